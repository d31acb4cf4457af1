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
const { build, nodeModules } = require('./solc-build.js');

const source = '@chainlink/contracts/src/v0.7/tests/MockV3Aggregator.sol';
build({
  source,
  content: fs.readFileSync(path.join(nodeModules, source), 'utf8'),
  contract: 'MockV3Aggregator',
  header: {
    contractName: 'MockV3Aggregator',
    sourceName: `node_modules/${source}`,
    package: '@chainlink/contracts@' + require(path.join(nodeModules, '@chainlink/contracts/package.json')).version,
  },
  out: 'MockV3Aggregator.json',
});
