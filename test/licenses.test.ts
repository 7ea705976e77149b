/**
 * The licence gate (scripts/licenses.mjs): the image's Python dependencies (docker/Dockerfile, the worker's
 * requirements and constraints) and the service's npm packages must all allow commercial use. The repository as it is
 * passes; a non-commercial or unknown licence anywhere in those lists fails the gate, and so this test.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const temp = mkdtempSync(join(tmpdir(), 'fast3d-licences-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function gate(args: string[]) {
  return spawnSync(process.execPath, ['scripts/licenses.mjs', ...args], { encoding: 'utf8' });
}

/** A copy of the image's build files and licence records, changed by `edit`, checked Python-only. */
function imageCopy(name: string, edit: (root: string) => void) {
  const root = join(temp, name);
  for (const file of [
    'docker/Dockerfile',
    'workers/gpu/requirements.txt',
    'workers/gpu/constraints.txt',
    'licenses/python-packages.json',
  ]) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    cpSync(file, join(root, file));
  }
  edit(root);
  return gate(['--check', '--python-only', '--root', root]);
}

const append = (root: string, file: string, text: string) => writeFileSync(join(root, file), readFileSync(join(root, file), 'utf8') + text);

describe('scripts/licenses.mjs', () => {
  it('passes on the repository: every Python and npm dependency of the image allows commercial use', () => {
    const result = gate(['--check']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('licence gate: every dependency allows commercial use');
    // The copyleft ones are recorded, not hidden.
    expect(result.stdout).toMatch(/copyleft: .*igraph \(GPL-2\.0-or-later\).*pymeshfix \(GPL-3\.0-only\)/);
    expect(readFileSync('docker/Dockerfile', 'utf8')).not.toMatch(/nvdiffrast\.git|mip-splatting\.git|diff-gaussian-rasterization/);
  });

  it('fails when a non-commercial piece enters the image: a git checkout, a requirement or a licence record', () => {
    const clone = imageCopy('clone', (root) =>
      append(
        root,
        'docker/Dockerfile',
        '\nRUN git clone https://github.com/NVlabs/nvdiffrast.git /tmp/nvdiffrast && pip install /tmp/nvdiffrast\n',
      ),
    );
    expect(clone.status).toBe(1);
    expect(clone.stderr).toContain('python nvdiffrast (docker/Dockerfile): NVIDIA Source Code License (1-Way Commercial)');

    const requirement = imageCopy('requirement', (root) =>
      append(
        root,
        'workers/gpu/requirements.txt',
        'diff_gaussian_rasterization @ git+https://github.com/autonomousvision/mip-splatting.git#subdirectory=submodules/diff-gaussian-rasterization\n',
      ),
    );
    expect(requirement.status).toBe(1);
    expect(requirement.stderr).toContain(
      'diff_gaussian_rasterization (workers/gpu/requirements.txt): Inria/MPII Gaussian-Splatting License',
    );

    const record = imageCopy('record', (root) => {
      const path = join(root, 'licenses/python-packages.json');
      const records = JSON.parse(readFileSync(path, 'utf8'));
      records.packages.xatlas.licence = 'CC-BY-NC-4.0';
      writeFileSync(path, JSON.stringify(records));
    });
    expect(record.status).toBe(1);
    expect(record.stderr).toContain("python xatlas: licence 'CC-BY-NC-4.0' is non-commercial");
  });

  it('fails on a Python dependency whose licence nobody reviewed', () => {
    const result = imageCopy('unknown', (root) => append(root, 'workers/gpu/constraints.txt', 'mystery-package==1.0\n'));
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('python mystery-package (workers/gpu/constraints.txt): no reviewed licence record');
  });

  it('checks what a build actually installed (pip freeze), and with strict pins that each is constrained', () => {
    const freeze = join(temp, 'freeze.txt');
    writeFileSync(freeze, 'torch==2.7.1+cu128\ngsplat @ file:///tmp/gsplat\nfilelock==3.16.1\n');
    const clean = imageCopy('freeze-clean', () => undefined);
    expect(clean.status, clean.stderr).toBe(0);
    const root = join(temp, 'freeze-clean');
    const ok = gate(['--check', '--python-only', '--root', root, '--python-freeze', freeze]);
    expect(ok.status, ok.stderr).toBe(0);
    const strict = gate([
      '--check',
      '--python-only',
      '--root',
      root,
      '--python-freeze',
      freeze,
      '--constraints',
      join(root, 'workers/gpu/constraints.txt'),
      '--strict-pins',
      '1',
    ]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toContain('filelock==3.16.1 is installed but not pinned');
    expect(strict.stderr).not.toContain('torch==');
    writeFileSync(freeze, 'torch==2.7.1+cu128\nnvdiffrast==0.3.3\n');
    const bad = gate(['--check', '--python-only', '--root', root, '--python-freeze', freeze]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('python nvdiffrast');
  });

  it('fails on an npm package that forbids commercial use or names no licence', () => {
    const root = join(temp, 'npm');
    mkdirSync(join(root, 'node_modules/shady'), { recursive: true });
    mkdirSync(join(root, 'node_modules/silent'), { recursive: true });
    for (const file of [
      'docker/Dockerfile',
      'workers/gpu/requirements.txt',
      'workers/gpu/constraints.txt',
      'licenses/python-packages.json',
    ]) {
      mkdirSync(join(root, file, '..'), { recursive: true });
      cpSync(file, join(root, file));
    }
    writeFileSync(
      join(root, 'package-lock.json'),
      JSON.stringify({
        packages: { '': {}, 'node_modules/shady': { version: '1.0.0' }, 'node_modules/silent': { version: '2.0.0' } },
      }),
    );
    writeFileSync(
      join(root, 'node_modules/shady/package.json'),
      JSON.stringify({ name: 'shady', version: '1.0.0', license: 'CC-BY-NC-SA-4.0' }),
    );
    writeFileSync(join(root, 'node_modules/silent/package.json'), JSON.stringify({ name: 'silent', version: '2.0.0' }));
    const result = gate(['--check', '--root', root]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("npm shady@1.0.0: licence 'CC-BY-NC-SA-4.0' is non-commercial");
    expect(result.stderr).toContain("npm silent@2.0.0: licence 'UNKNOWN' is unknown");
  });
});
