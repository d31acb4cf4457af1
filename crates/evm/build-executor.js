#!/usr/bin/env node
// Compiles solidity/StratboxExecutor.sol with solcjs 0.7.6 (the npm `solc` package pinned in
// the workspace's package.json) and writes artifacts/StratboxExecutor.json.
//
//   node crates/evm/build-executor.js            # regenerate the committed artifact
//   node crates/evm/build-executor.js --stdout   # print it instead (the Rust test compares)
'use strict';
const fs = require('fs');
const path = require('path');
const { build, here } = require('./solc-build.js');

const sourceName = 'StratboxExecutor.sol';
build({
  source: sourceName,
  content: fs.readFileSync(path.join(here, 'solidity', sourceName), 'utf8'),
  contract: 'StratboxExecutor',
  header: {
    contractName: 'StratboxExecutor',
    sourceName: `crates/evm/solidity/${sourceName}`,
  },
  out: 'StratboxExecutor.json',
});
