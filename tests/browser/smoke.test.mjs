// The harness itself: the gateway serves the client at / and the login page appears.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startGateway, launchBrowser, screenshotDir } from "./harness.mjs";

test("the gateway serves the web client at /", { timeout: 90000 }, async () => {
  const gw = await startGateway();
  const browser = await launchBrowser().catch(async (e) => {
    await gw.stop();
    throw e;
  });
  try {
    const page = await browser.context.newPage();
    const res = await page.goto(gw.url + "/");
    assert.equal(res.status(), 200);
    assert.match(await page.title(), /moongate/);
    await page.screenshot({ path: path.join(screenshotDir, "smoke.png") });
  } finally {
    await browser.close();
    await gw.stop();
  }
});
