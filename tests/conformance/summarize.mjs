// Summarizes one scripts/conformance run.
//
//   node summarize.mjs LABEL URL RUN_DIR OUT_JSON SCENARIO...
//
// RUN_DIR holds, per scenario, SCENARIO/ (the suite's `conformance server -o`
// directory: SCENARIO/server-SCENARIO-<timestamp>/checks.json), SCENARIO.log
// (its console output) and SCENARIO.rc (its exit status).
// A scenario passes when the suite recorded checks for it and none of them is
// a FAILURE (the suite's own ✓/✗ rule; WARNING and INFO do not fail it).
// Prints one line per scenario and the closing line
//   conformance LABEL: N passed, M failed
// and writes the JSON summary (with every check) to OUT_JSON.
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const [label, url, runDir, outJson, ...scenarios] = process.argv.slice(2);

function checksFor(scenario) {
  const dir = join(runDir, scenario);
  if (!existsSync(dir)) return undefined;
  const dirs = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  if (dirs.length === 0) return undefined;
  const file = join(dir, dirs[dirs.length - 1], "checks.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8"));
}

const results = [];
let passed = 0;
let failed = 0;
let ran = 0;
for (const scenario of scenarios) {
  const rcFile = join(runDir, `${scenario}.rc`);
  const rc = existsSync(rcFile) ? readFileSync(rcFile, "utf8").trim() : "";
  let checks;
  try {
    checks = checksFor(scenario);
  } catch {
    checks = undefined; // unreadable checks.json counts as no results
  }
  const count = (status) => (checks ?? []).filter((c) => c.status === status).length;
  const entry = {
    scenario,
    exitCode: rc === "" ? null : Number(rc),
    checksRecorded: checks !== undefined,
    success: count("SUCCESS"),
    failure: count("FAILURE"),
    warning: count("WARNING"),
    failures: (checks ?? [])
      .filter((c) => c.status === "FAILURE")
      .map((c) => ({ id: c.id, description: c.description, errorMessage: c.errorMessage ?? null })),
    warnings: (checks ?? [])
      .filter((c) => c.status === "WARNING")
      .map((c) => ({ id: c.id, description: c.description, errorMessage: c.errorMessage ?? null })),
    checks: checks ?? [],
  };
  if (checks !== undefined) ran += 1;
  if (!entry.checksRecorded) {
    entry.pass = false;
    entry.failures.push({
      id: scenario,
      description: "scenario produced no checks",
      errorMessage:
        entry.exitCode === 124
          ? "timed out"
          : `suite exited ${entry.exitCode ?? "?"} without results (see ${scenario}.log)`,
    });
  } else {
    entry.pass = entry.failure === 0;
  }
  if (entry.pass) passed += 1;
  else failed += 1;
  results.push(entry);

  const tally = `${entry.success} ok, ${entry.failure} failed, ${entry.warning} warnings`;
  console.log(`${entry.pass ? "PASS" : "FAIL"} ${scenario} (${tally})`);
  for (const f of entry.failures) {
    console.log(`     x ${f.id}: ${f.errorMessage ?? f.description}`);
  }
  for (const w of entry.warnings) {
    console.log(`     ! ${w.id}: ${w.errorMessage ?? w.description}`);
  }
}

writeFileSync(
  outJson,
  JSON.stringify(
    { label, url, finishedAt: new Date().toISOString(), passed, failed, scenariosWithResults: ran, results },
    null,
    2,
  ) + "\n",
);
console.log(`results: ${outJson}`);
console.log(`conformance ${label}: ${passed} passed, ${failed} failed`);
// 3 tells the caller that no scenario produced any result (the suite could
// not run at all).
process.exit(ran === 0 ? 3 : 0);
