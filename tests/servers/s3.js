#!/usr/bin/env node
// S3-compatible object storage for the tests, on 127.0.0.1.
//
//   node tests/servers/s3.js [BUCKET] [--port N]
//
// Runs @20minutes/s3rver (a maintained fork of s3rver: the released s3rver
// 3.7.1 accepts any AWS Signature Version 4 without checking it; the fork
// computes and compares it) behind a small front on the public port that adds
// the checks s3rver leaves out:
//   - the payload hash: a hex x-amz-content-sha256 must be the SHA-256 of the
//     body (400 XAmzContentSHA256Mismatch, as S3 answers);
//   - virtual-host style: "Host: BUCKET.localhost[:port]" or
//     "BUCKET.s3.localhost[:port]" is passed on as path style, and its
//     signature checked here on the URI the client signed (s3rver would
//     compute it on the rewritten path);
//   - anonymous requests: S3 refuses them (403 AccessDenied) except a GET or
//     HEAD of an object that was stored with "x-amz-acl: public-read"
//     (s3rver itself lets anyone read and write).
// Credentials: access key "S3RVER", secret "S3RVER"; any region; service s3.
// A bucket BUCKET (default "podcasts") exists from the start, in a temporary
// directory removed at exit. Prints "PORT <n>" as its first line, exits when
// its standard input reaches end of file.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

let S3rver;
try {
  S3rver = require('@20minutes/s3rver');
} catch (e) {
  process.stderr.write(
    's3.js: @20minutes/s3rver is not installed: run tests/servers/install.sh\n',
  );
  process.exit(2);
}

const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';

let bucket = 'podcasts';
let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i].startsWith('--port=')) port = Number(argv[i].slice(7));
  else bucket = argv[i];
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobq-s3-'));
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    /* nothing more to do */
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => process.exit(0));
}

function xmlEscape(s) {
  return String(s).replace(
    /[<>&'"]/g,
    (c) =>
      ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[
        c
      ],
  );
}

function s3Error(res, status, code, message, extra) {
  let body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' +
    code +
    '</Code><Message>' +
    xmlEscape(message) +
    '</Message>';
  for (const [k, v] of Object.entries(extra || {})) {
    body += `<${k}>${xmlEscape(v)}</${k}>`;
  }
  body += `<RequestId>${crypto.randomBytes(8).toString('hex').toUpperCase()}</RequestId></Error>`;
  res.writeHead(status, {
    'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

// ---- Signature Version 4, as S3 computes it -------------------------------

// S3 encodes each path segment once (RFC 3986 unreserved characters kept).
function uriEncode(s, keepSlash) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  return rawQuery
    .split('&')
    .filter((p) => p.length > 0)
    .map((p) => {
      const eq = p.indexOf('=');
      const k = eq < 0 ? p : p.slice(0, eq);
      const v = eq < 0 ? '' : p.slice(eq + 1);
      return [
        uriEncode(safeDecode(k.replace(/\+/g, ' ')), false),
        uriEncode(safeDecode(v.replace(/\+/g, ' ')), false),
      ];
    })
    .filter(([k]) => k !== 'X-Amz-Signature')
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => k + '=' + v)
    .join('&');
}

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// Checks the Authorization header of req against the URI the client sent.
// Returns null when it matches, else [status, code, message, extra].
function verifySigV4(req, rawPath, rawQuery) {
  const auth = req.headers['authorization'] || '';
  const m =
    /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/.exec(
      auth,
    );
  if (!m) {
    return [
      400,
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.',
    ];
  }
  const [akid, date, region, service, term] = m[1].split('/');
  if (akid !== ACCESS_KEY) {
    return [
      403,
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: akid },
    ];
  }
  if (service !== 's3' || term !== 'aws4_request' || !region || !/^\d{8}$/.test(date || '')) {
    return [
      400,
      'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
    ];
  }
  const amzDate = req.headers['x-amz-date'];
  const t = parseAmzDate(amzDate);
  if (isNaN(t)) {
    return [403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header'];
  }
  if (Math.abs(Date.now() - t) > 15 * 60 * 1000) {
    return [
      403,
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
    ];
  }
  const payloadHash = req.headers['x-amz-content-sha256'];
  if (payloadHash === undefined) {
    return [400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
  }
  const signed = m[2].split(';');
  if (!signed.includes('host')) {
    return [403, 'AccessDenied', 'The host header must be signed.'];
  }
  let canonicalHeaders = '';
  for (const h of signed) {
    const v = req.headers[h];
    if (v === undefined) {
      return [403, 'AccessDenied', `Header ${h} is signed but missing.`];
    }
    canonicalHeaders += h + ':' + String(v).trim().replace(/\s+/g, ' ') + '\n';
  }
  const canonicalUri = uriEncode(safeDecode(rawPath), true);
  const canonicalRequest = [
    req.method,
    canonicalUri,
    canonicalQuery(rawQuery),
    canonicalHeaders,
    signed.join(';'),
    payloadHash,
  ].join('\n');
  const scope = [date, region, service, term].join('/');
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    crypto.createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  let key = crypto.createHmac('sha256', 'AWS4' + SECRET_KEY).update(date).digest();
  key = crypto.createHmac('sha256', key).update(region).digest();
  key = crypto.createHmac('sha256', key).update(service).digest();
  key = crypto.createHmac('sha256', key).update(term).digest();
  const sig = crypto.createHmac('sha256', key).update(stringToSign).digest('hex');
  if (sig !== m[3]) {
    return [
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: akid, StringToSign: stringToSign, CanonicalRequest: canonicalRequest },
    ];
  }
  return null;
}

// ---- the front --------------------------------------------------------------

function vhostBucket(host) {
  const h = String(host || '').replace(/:\d+$/, '').toLowerCase();
  const m = /^(.+?)\.(?:s3(?:[.-][a-z0-9-]+)?\.)?localhost$/.exec(h);
  return m ? m[1] : null;
}

// "/bucket/key" of the objects stored with x-amz-acl: public-read.
const publicObjects = new Set();

async function main() {
  const backend = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    // path style only behind the front, which rewrites virtual-host requests
    vhostBuckets: false,
    serviceEndpoint: 'invalid.invalid',
    configureBuckets: [{ name: bucket }],
  });
  const { port: backendPort } = await backend.run();

  const front = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const q = req.url.indexOf('?');
      const rawPath = q < 0 ? req.url : req.url.slice(0, q);
      const rawQuery = q < 0 ? '' : req.url.slice(q + 1);
      const headers = { ...req.headers };

      const sha = req.headers['x-amz-content-sha256'];
      if (sha && /^[0-9a-fA-F]{64}$/.test(sha)) {
        const actual = crypto.createHash('sha256').update(body).digest('hex');
        if (actual !== sha.toLowerCase()) {
          return s3Error(
            res,
            400,
            'XAmzContentSHA256Mismatch',
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            { ClientComputedContentSHA256: sha, S3ComputedContentSHA256: actual },
          );
        }
      }

      const signed =
        'authorization' in req.headers ||
        /(^|&)(X-Amz-Algorithm|Signature)=/.test(rawQuery);
      const vb = vhostBucket(req.headers.host);
      const objectPath =
        vb !== null ? '/' + vb + rawPath : rawPath.replace(/\/+$/, '');
      if (!signed) {
        const readable = req.method === 'GET' || req.method === 'HEAD';
        if (!readable || !publicObjects.has(safeDecode(objectPath))) {
          return s3Error(res, 403, 'AccessDenied', 'Access Denied');
        }
      }

      let url = req.url;
      if (vb !== null) {
        // The client signed "/key" on host BUCKET.localhost: check that here,
        // then hand s3rver an unsigned path-style request.
        if (req.headers['authorization']) {
          const err = verifySigV4(req, rawPath, rawQuery);
          if (err) return s3Error(res, err[0], err[1], err[2], err[3]);
          delete headers['authorization'];
        }
        url = '/' + vb + (rawPath.startsWith('/') ? '' : '/') + url;
      }

      headers['content-length'] = String(body.length);
      delete headers['transfer-encoding'];
      const preq = http.request(
        { host: '127.0.0.1', port: backendPort, method: req.method, path: url, headers },
        (pres) => {
          if (req.method === 'PUT' && pres.statusCode === 200 && !/[?]/.test(url)) {
            const key = safeDecode(objectPath);
            if (String(req.headers['x-amz-acl'] || '') === 'public-read') publicObjects.add(key);
            else publicObjects.delete(key);
          }
          res.writeHead(pres.statusCode, pres.headers);
          pres.pipe(res);
        },
      );
      preq.on('error', (e) => {
        if (!res.headersSent) s3Error(res, 500, 'InternalError', String(e));
        else res.destroy();
      });
      preq.end(body);
    });
  });
  front.keepAliveTimeout = 5000;
  front.listen(port, '127.0.0.1', () => {
    process.stdout.write(`PORT ${front.address().port}\n`);
  });

  const stop = () => {
    cleanup();
    process.exit(0);
  };
  process.stdin.on('data', () => {});
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

main().catch((e) => {
  process.stderr.write(`s3.js: ${e && e.stack ? e.stack : e}\n`);
  cleanup();
  process.exit(1);
});
