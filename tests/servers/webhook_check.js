// Checks libjobq's webhook signatures with the reference implementation of
// the Standard Webhooks specification (npm: standardwebhooks), and signs
// with it for the other direction. Used by tests/unit/test_webhook_interop.c.
//   node webhook_check.js verify MANIFEST   every case verifies; a changed
//                                           body, id or signature does not
//   node webhook_check.js sign MANIFEST     prints "v1,..." per case
// MANIFEST is one case a line: secret id timestamp body_file signature
// (signature may be several "v1,..." entries joined by '|').
"use strict";
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const [mode, manifest] = process.argv.slice(2);
const cases = fs.readFileSync(manifest, "utf8").split("\n").filter((l) => l.length > 0)
  .map((l) => {
    const [secret, id, ts, file, sig] = l.split(" ");
    return { secret, id, ts, body: fs.readFileSync(file), sig: sig.split("|").join(" ") };
  });

let bad = 0;
cases.forEach((c, i) => {
  const wh = new Webhook(c.secret);
  if (mode === "sign") {
    console.log(wh.sign(c.id, new Date(Number(c.ts) * 1000), c.body));
    return;
  }
  const headers = { "webhook-id": c.id, "webhook-timestamp": c.ts, "webhook-signature": c.sig };
  try {
    wh.verify(c.body, headers);
    console.log(`case ${i}: verified (${c.body.length} bytes)`);
  } catch (e) {
    console.log(`case ${i}: NOT verified: ${e.message}`);
    bad++;
  }
  // The same with one thing changed must fail, or verify proved nothing.
  const changed = [
    ["body", Buffer.concat([c.body, Buffer.from(" ")]), headers],
    ["id", c.body, { ...headers, "webhook-id": c.id + "x" }],
    ["timestamp", c.body, { ...headers, "webhook-timestamp": String(Number(c.ts) + 1) }],
  ];
  for (const [what, body, h] of changed) {
    try {
      wh.verify(body, h, { jsonParse: false });
      console.log(`case ${i}: verified with a changed ${what}`);
      bad++;
    } catch (e) { /* expected */ }
  }
});
process.exit(bad === 0 ? 0 : 1);
