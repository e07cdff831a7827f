// Runs the ticktock-wheel smoke workload inside WebAssembly and checks it against the native run.
//
//   node run.mjs <ticktock_wheel_wasm_smoke.wasm> <expected.txt>
//
// expected.txt is what the host `expected` binary printed: one line per case,
//   case seed=0x… timers=… checksum=0x… inserted=… fired=… … errors=0x…
// Each case is run in the .wasm with the same seed and timer count; it passes only when the
// wasm reports no error flag (early, late, double or lost fires, wrong cancel/reset results…)
// and every field equals the native one. Prints one line per case and a closing
// "wasm smoke: N passed, M failed"; exits 1 on any failure (or on no cases at all).

import { readFileSync } from 'node:fs';

const FLAGS = [
  'EARLY', 'LATE', 'DOUBLE', 'LOST', 'CANCEL', 'RESET', 'NEXT_DEADLINE', 'STUCK', 'UNKNOWN',
  'COUNT', 'STATS',
];
const FIELDS = [
  'inserted', 'fired', 'cancelled', 'resets', 'stale_ops', 'polls', 'fired_hash', 'errors',
];

function describeErrors(bits) {
  const names = FLAGS.filter((_, i) => (bits >> BigInt(i)) & 1n);
  return names.length ? names.join('|') : 'none';
}

function parseExpected(text) {
  const cases = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('case ')) continue;
    const fields = {};
    for (const pair of line.slice(5).trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq < 1) throw new Error(`bad field ${JSON.stringify(pair)} in: ${line}`);
      fields[pair.slice(0, eq)] = BigInt(pair.slice(eq + 1));
    }
    for (const name of ['seed', 'timers', 'checksum', ...FIELDS]) {
      if (!(name in fields)) throw new Error(`missing ${name} in: ${line}`);
    }
    cases.push(fields);
  }
  return cases;
}

const hex = (v) => `0x${v.toString(16)}`;

async function main() {
  const [wasmPath, expectedPath] = process.argv.slice(2);
  if (!wasmPath || !expectedPath) {
    console.error('usage: node run.mjs <module.wasm> <expected.txt>');
    return 2;
  }
  const cases = parseExpected(readFileSync(expectedPath, 'utf8'));
  if (cases.length === 0) {
    console.error(`no "case" lines in ${expectedPath}`);
    console.log('wasm smoke: 0 passed, 1 failed');
    return 1;
  }

  const module = await WebAssembly.compile(readFileSync(wasmPath));

  let passed = 0;
  let failed = 0;
  for (const want of cases) {
    const label = `seed=${hex(want.seed)} timers=${want.timers}`;
    const problems = [];
    const got = {};
    const started = process.hrtime.bigint();
    try {
      // A fresh instance per case, so a trap in one case cannot leave a broken heap behind for
      // the next. The module imports nothing: no host functions, no WASI.
      const ex = (await WebAssembly.instantiate(module, {})).exports;
      // u64 is a BigInt on the JS side; u32 is a Number.
      got.checksum = BigInt.asUintN(64, ex.run_workload(want.seed, Number(want.timers)));
      for (const name of FIELDS) got[name] = BigInt.asUintN(64, ex[`last_${name}`]());
    } catch (err) {
      // A panic in the wheel (failed debug_assert, overflow) traps as a RuntimeError.
      problems.push(`trapped: ${err}`);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (problems.length === 0) {
      if (got.errors !== 0n) {
        problems.push(`wasm raised errors ${hex(got.errors)} (${describeErrors(got.errors)})`);
      }
      if (want.errors !== 0n) {
        problems.push(`native run raised errors ${hex(want.errors)} (${describeErrors(want.errors)})`);
      }
      for (const name of FIELDS) {
        if (got[name] !== want[name]) problems.push(`${name}: wasm ${got[name]}, native ${want[name]}`);
      }
      if (got.checksum !== want.checksum) {
        problems.push(`checksum: wasm ${hex(got.checksum)}, native ${hex(want.checksum)}`);
      }
      if (got.inserted !== got.fired + got.cancelled) {
        problems.push(`inserted ${got.inserted} != fired ${got.fired} + cancelled ${got.cancelled}`);
      }
    }
    if (problems.length === 0) {
      passed += 1;
      console.log(
        `ok   ${label}: checksum ${hex(got.checksum)}, ${got.fired} fired, ` +
          `${got.cancelled} cancelled, ${got.resets} reset, ${got.polls} polls (${ms.toFixed(1)} ms)`,
      );
    } else {
      failed += 1;
      console.log(`FAIL ${label}`);
      for (const problem of problems) console.log(`     ${problem}`);
    }
  }
  console.log(`wasm smoke: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    console.log('wasm smoke: 0 passed, 1 failed');
    process.exit(1);
  },
);
