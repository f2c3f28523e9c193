/**
 * Surround → stereo for an output that has fewer speakers than the stream. Web Audio mixes 5.1
 * down by itself but leaves 7.1 to "discrete" rules (the centre and surrounds would be lost), so
 * the client mixes both the same way: the centre and each surround at −3 dB into its side, the
 * LFE dropped (the Web Audio 5.1 → stereo rule). Channels are in GameStream speaker order
 * FL FR FC LFE BL BR SL SR.
 */
const G = Math.SQRT1_2;

/** Mixes `planes` (one Float32Array per speaker, 6 or 8 of them) into [left, right]. */
export function downmixToStereo(planes: Float32Array[]): [Float32Array<ArrayBuffer>, Float32Array<ArrayBuffer>] {
  const n = planes[0]?.length ?? 0;
  const left = new Float32Array(n);
  const right = new Float32Array(n);
  const [fl, fr, fc, , bl, br, sl, sr] = planes;
  for (let i = 0; i < n; i++) {
    const c = fc ? G * fc[i] : 0;
    left[i] = fl[i] + c + (bl ? G * bl[i] : 0) + (sl ? G * sl[i] : 0);
    right[i] = fr[i] + c + (br ? G * br[i] : 0) + (sr ? G * sr[i] : 0);
  }
  return [left, right];
}
