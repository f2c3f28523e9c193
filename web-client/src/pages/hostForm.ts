import type { AddHost, HostView } from "../api";

/** The raw values of the add-host form. */
export interface HostFormValues {
  address: string;
  name: string;
  httpPort: string;
  mac: string;
  wolfApi: string;
}

/**
 * Checks a Wolf API location as the server does: a Unix socket path (`/…`) or `http://host:port`.
 * Returns an error text, or null when it is usable (or empty: the field is optional).
 */
export function wolfApiError(value: string): string | null {
  const v = value.trim();
  if (!v) return null;
  if (v.startsWith("/")) return null;
  const m = /^http:\/\/([^/\s:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(v);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) return null;
  return "The Wolf API is a Unix socket path (/var/run/wolf/wolf.sock) or http://host:port.";
}

/** The `POST /api/hosts` body for the form's values (empty optional fields left out). */
export function addHostBody(v: HostFormValues): AddHost {
  return {
    address: v.address.trim(),
    ...(v.name.trim() ? { name: v.name.trim() } : {}),
    ...(v.httpPort.trim() ? { http_port: Number(v.httpPort) } : {}),
    ...(v.mac.trim() ? { mac: v.mac.trim() } : {}),
    ...(v.wolfApi.trim() ? { wolf_api: v.wolfApi.trim() } : {}),
  };
}

/** How streams from `host` are paired, in one or two sentences (shown when pairing). */
export function pairingPolicy(host: Pick<HostView, "wolf_api">): string {
  if (host.wolf_api) {
    return "This host has a Wolf API: every browser gets its own identity, paired automatically.";
  }
  return (
    "This host has no pairing API, so every browser streams through the identity you pair here with the PIN. " +
    "The host allows one stream per identity: one browser at a time, and a new tab takes over from the old one."
  );
}
