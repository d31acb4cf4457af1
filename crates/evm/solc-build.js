// Shared by build-executor.js and build-aggregator.js: compiles one Solidity source with the
// solcjs 0.7.6 pinned in the workspace's package.json (imports read from node_modules) and
// writes its artifact to artifacts/, or prints it with `--stdout` (the Rust tests compare).
'use strict';
const fs = require('fs');
const path = require('path');

const here = __dirname;
const root = path.resolve(here, '..', '..');
const nodeModules = process.env.STRATBOX_NODE_MODULES || path.join(root, 'node_modules');

// `source`: the name solc sees (imports resolve against it); `content`: its text;
// `contract`: the contract to keep; `header`: the artifact's fields before `compiler`.
function build({ source, content, contract, header, out }) {
  const solc = require(path.join(nodeModules, 'solc'));
  const input = {
    language: 'Solidity',
    sources: { [source]: { content } },
    settings: {
      optimizer: { enabled: true, runs: 800 },
      evmVersion: 'istanbul',
      metadata: { bytecodeHash: 'none' },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const findImports = (importPath) => {
    const file = path.join(nodeModules, importPath);
    try {
      return { contents: fs.readFileSync(file, 'utf8') };
    } catch (e) {
      return { error: `not found: ${importPath} (${e.message})` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
  if (errors.length > 0) process.exit(1);
  const compiled = output.contracts[source][contract];
  const artifact = {
    ...header,
    compiler: `solc ${solc.version()}`,
    settings: input.settings,
    abi: compiled.abi,
    bytecode: '0x' + compiled.evm.bytecode.object,
    deployedBytecode: '0x' + compiled.evm.deployedBytecode.object,
  };
  const text = JSON.stringify(artifact, null, 2) + '\n';
  if (process.argv.includes('--stdout')) {
    process.stdout.write(text);
  } else {
    const file = path.join(here, 'artifacts', out);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    process.stderr.write(`wrote ${file}\n`);
  }
}

module.exports = { build, here, nodeModules };
