import { describe, expect, it } from "vitest";
import { addHostBody, pairingPolicy, wolfApiError } from "./hostForm";

describe("add-host form", () => {
  it("sends the Wolf API when given and leaves empty optional fields out", () => {
    expect(addHostBody({ address: " 10.0.0.2 ", name: "", httpPort: "", mac: "", wolfApi: " http://10.0.0.2:8080 " })).toEqual({
      address: "10.0.0.2",
      wolf_api: "http://10.0.0.2:8080",
    });
    expect(addHostBody({ address: "pc.local", name: "PC", httpPort: "47989", mac: "aa:bb:cc:dd:ee:ff", wolfApi: "" })).toEqual({
      address: "pc.local",
      name: "PC",
      http_port: 47989,
      mac: "aa:bb:cc:dd:ee:ff",
    });
  });

  it("accepts a socket path or http://host:port and explains anything else", () => {
    expect(wolfApiError("")).toBeNull();
    expect(wolfApiError("/var/run/wolf/wolf.sock")).toBeNull();
    expect(wolfApiError("http://127.0.0.1:8080")).toBeNull();
    expect(wolfApiError("https://wolf:443")).toMatch(/Unix socket path/);
    expect(wolfApiError("http://wolf")).toMatch(/http:\/\/host:port/);
    expect(wolfApiError("http://wolf:70000")).not.toBeNull();
  });
});

describe("pairing policy", () => {
  it("states the shared identity and the takeover for a host without a pairing API", () => {
    const text = pairingPolicy({ wolf_api: null });
    expect(text).toMatch(/identity you pair here with the PIN/);
    expect(text).toMatch(/new tab takes over/);
  });

  it("states automatic per-browser pairing with a Wolf API", () => {
    expect(pairingPolicy({ wolf_api: "/tmp/wolf.sock" })).toMatch(/paired automatically/);
  });
});
