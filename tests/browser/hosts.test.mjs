// Host management through the client: add a host, pair it (the PIN the dialog shows is entered
// on the host through its Wolf API, as a user would type it there), see it paired, remove it.
import { test } from "node:test";
import dgram from "node:dgram";
import assert from "node:assert/strict";
import path from "node:path";
import { launchBrowser, screenshotDir, startGateway, until, wolfApi } from "./harness.mjs";

test("add a host, pair it with the PIN shown, remove it; wake an offline host", { timeout: 90000 }, async () => {
  // Wake-on-LAN packets go to a UDP socket of this test instead of the broadcast address.
  const wol = dgram.createSocket("udp4");
  await new Promise((r) => wol.bind(0, "127.0.0.1", r));
  const magic = new Promise((r) => wol.once("message", (m) => r(m)));
  const gw = await startGateway({ env: { MOONGATE_WOL_TARGET: `127.0.0.1:${wol.address().port}` } }).catch((e) => {
    wol.close();
    throw e;
  });
  let browser;
  try {
    browser = await launchBrowser();
    const auth = { headers: { Authorization: `Bearer ${gw.credential}` } };
    const [embedded] = await (await fetch(gw.url + "/api/hosts", auth)).json();
    const page = await browser.context.newPage();
    page.on("dialog", (d) => d.accept()); // the "Remove …?" confirmation
    await page.goto(gw.url + "/");
    await page.fill("[data-testid=credential]", gw.credential);
    await page.click("[data-testid=login]");
    await page.waitForSelector("[data-testid=host][data-online=true]");

    // The same demo host under another name: a new host to the gateway, not paired yet.
    await page.click("text=Add host");
    await page.fill("input[name=address]", "localhost");
    await page.fill("input[name=name]", "Second demo host");
    await page.fill("input[name=http_port]", String(embedded.http_port));
    await page.fill("input[name=mac]", "02:00:00:00:00:01");
    await page.click("dialog button[type=submit]");
    const card = page.locator("[data-testid=host]", { hasText: "Second demo host" });
    await card.locator("text=not paired").waitFor();
    await page.screenshot({ path: path.join(screenshotDir, "10-host-added.png") });

    await card.locator("button", { hasText: "Pair" }).click();
    const pinEl = page.locator("[data-testid=pin]");
    await pinEl.waitFor();
    const pin = (await pinEl.textContent()).trim();
    assert.match(pin, /^\d{4}$/);
    await page.screenshot({ path: path.join(screenshotDir, "11-pairing-pin.png") });
    // Enter the PIN on the host.
    const pending = await until(10000, "the host sees the pairing request", async () => {
      const r = await wolfApi(gw, "/api/v1/pair/pending");
      return r.requests?.[0];
    });
    const answer = await wolfApi(gw, "/api/v1/pair/client", { pair_secret: pending.pair_secret, pin });
    assert.equal(answer.success, true, JSON.stringify(answer));
    await page.locator("[data-testid=pair-dialog]", { hasText: "ready" }).waitFor({ timeout: 20000 });
    await page.screenshot({ path: path.join(screenshotDir, "12-paired.png") });
    await page.click("[data-testid=pair-dialog] button:has-text('Done')");
    await card.locator(".badge.ok", { hasText: /^paired$/ }).waitFor({ timeout: 10000 });

    await card.locator("button", { hasText: "Remove" }).click();
    await card.waitFor({ state: "detached" });
    const hosts = await (await fetch(gw.url + "/api/hosts", auth)).json();
    assert.deepEqual(hosts.map((h) => h.id), [embedded.id]);

    // An offline host with a MAC address offers Wake-on-LAN; the magic packet goes out.
    await page.click("text=Add host");
    await page.fill("input[name=address]", "127.0.0.1");
    await page.fill("input[name=name]", "Sleeping PC");
    await page.fill("input[name=http_port]", "9"); // nothing listens there
    await page.fill("input[name=mac]", "02:00:00:00:00:02");
    await page.click("dialog button[type=submit]");
    const sleeping = page.locator("[data-testid=host]", { hasText: "Sleeping PC" });
    await sleeping.locator(".badge", { hasText: "offline" }).waitFor({ timeout: 20000 });
    await sleeping.locator("button", { hasText: "Wake" }).click();
    await sleeping.locator("text=Wake-on-LAN packet sent").waitFor();
    await page.screenshot({ path: path.join(screenshotDir, "13-wake.png") });
    const packet = await Promise.race([magic, new Promise((_, rej) => setTimeout(() => rej(new Error("no Wake-on-LAN packet in 5 s")), 5000))]);
    const mac = Buffer.from([2, 0, 0, 0, 0, 2]);
    assert.deepEqual(packet.subarray(0, 6), Buffer.alloc(6, 0xff));
    for (let i = 0; i < 16; i++) assert.deepEqual(packet.subarray(6 + i * 6, 12 + i * 6), mac, `MAC repetition ${i}`);
  } finally {
    await browser?.close();
    await gw.stop();
    wol.close();
  }
});
