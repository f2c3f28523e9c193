import { describe, expect, it } from "vitest";
import { ssoRoute } from "./api";

const split = (hash: string) => hash.replace(/^#/, "").split("/").filter(Boolean);

describe("identity provider sign-in routes", () => {
  it("reads the sign-in token", () => {
    const token = "0123456789abcdef".repeat(4);
    expect(ssoRoute(split(`#/sso/${token}`))).toEqual({ token });
  });

  it("decodes the gateway's reason", () => {
    const reason = "mallory has no moongate account; an administrator must add it first";
    const encoded = reason.replace(/[^A-Za-z0-9\-._~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
    expect(ssoRoute(split(`#/sso-error/${encoded}`))).toEqual({
      error: `The sign-in through the identity provider failed: ${reason}`,
    });
  });

  it("keeps a reason that is not valid percent-encoding as it came", () => {
    expect(ssoRoute(split("#/sso-error/bad%ZZ"))).toEqual({ error: "The sign-in through the identity provider failed: bad%ZZ" });
  });

  it("refuses a malformed sign-in link", () => {
    for (const hash of ["#/sso", "#/sso/", "#/sso/a/b", "#/sso/a%20b", "#/sso-error"]) {
      expect(ssoRoute(split(hash)), hash).toEqual({ error: "The sign-in link is not valid. Sign in again." });
    }
  });

  it("leaves other routes alone", () => {
    for (const hash of ["", "#/", "#/login", "#/hosts/1", "#/watch/s/t", "#/ssox/1"]) expect(ssoRoute(split(hash)), hash).toBeNull();
  });
});
