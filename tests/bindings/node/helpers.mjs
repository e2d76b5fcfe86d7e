// Shared by the node:test files: a temporary directory per test file and
// a child-process runner. JOBQ_LIBRARY points the binding at the built
// library (tests/bindings/node.cmake sets it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const bindingUrl = new URL('../../../bindings/node/index.js', import.meta.url).href;

export function tempDir(t) {
  const d = mkdtempSync(path.join(tmpdir(), 'jobq-node-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

// Runs `node -e code` (an ES module) with the binding's URL in BINDING;
// resolves with {code, signal, stdout, stderr}. onLine sees stdout lines
// as they come (with the child, to kill it).
export function runChild(code, { onLine, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      env: { ...process.env, BINDING: bindingUrl, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      partial += d;
      let i;
      while ((i = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, i);
        partial = partial.slice(i + 1);
        if (onLine) onLine(line, child);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
