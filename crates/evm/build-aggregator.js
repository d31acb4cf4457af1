#!/usr/bin/env node
// Compiles Chainlink's MockV3Aggregator (an AggregatorV2V3Interface implementation: the
// `latestRoundData` a price feed answers, with an `updateAnswer` a keeper calls) from the
// sources the npm package `@chainlink/contracts` 0.4.1 ships (it ships no bytecode), with the
// solcjs 0.7.6 pinned in package.json, and writes artifacts/MockV3Aggregator.json.
//
//   node crates/evm/build-aggregator.js            # regenerate the committed artifact
//   node crates/evm/build-aggregator.js --stdout   # print it instead (the Rust test compares)
'use strict';
const fs = require('fs');
const path = require('path');

const here = __dirname;
const root = path.resolve(here, '..', '..');
const nodeModules = process.env.STRATBOX_NODE_MODULES || path.join(root, 'node_modules');
const solc = require(path.join(nodeModules, 'solc'));

const sourceName = '@chainlink/contracts/src/v0.7/tests/MockV3Aggregator.sol';
const input = {
  language: 'Solidity',
  sources: { [sourceName]: { content: fs.readFileSync(path.join(nodeModules, sourceName), 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 800 },
    evmVersion: 'istanbul',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};

function findImports(importPath) {
  const file = path.join(nodeModules, importPath);
  try {
    return { contents: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    return { error: `not found: ${importPath} (${e.message})` };
  }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
if (errors.length > 0) process.exit(1);

const contract = output.contracts[sourceName].MockV3Aggregator;
const artifact = {
  contractName: 'MockV3Aggregator',
  sourceName: `node_modules/${sourceName}`,
  package: '@chainlink/contracts@' + require(path.join(nodeModules, '@chainlink/contracts/package.json')).version,
  compiler: `solc ${solc.version()}`,
  settings: input.settings,
  abi: contract.abi,
  bytecode: '0x' + contract.evm.bytecode.object,
  deployedBytecode: '0x' + contract.evm.deployedBytecode.object,
};
const text = JSON.stringify(artifact, null, 2) + '\n';
if (process.argv.includes('--stdout')) {
  process.stdout.write(text);
} else {
  const out = path.join(here, 'artifacts', 'MockV3Aggregator.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, text);
  process.stderr.write(`wrote ${out}\n`);
}
