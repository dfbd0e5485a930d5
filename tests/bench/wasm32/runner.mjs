// Run the MicroPython WebAssembly port (wasm32) on files mirrored from the host.
// node runner.mjs JOB.json; JOB: {heapsize, dirs: host folders copied in at the same
// paths, module: file URL of micropython.mjs, chunks: Python sources run one by one as top-level calls (this port collects
// garbage only between them), back: folders copied out after the run}.
import fs from "fs";
import nodepath from "path";

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
// job.module: the file URL of the package's micropython.mjs (installed under .bench-node)
const { loadMicroPython } = await import(job.module);
const out = (s) => process.stdout.write(s);
const mp = await loadMicroPython({ heapsize: job.heapsize, stdout: out, stderr: (s) => process.stderr.write(s), linebuffer: false });
const FS = mp.FS;
function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
function copyIn(host) {
  mkdirs(host);
  for (const name of fs.readdirSync(host)) {
    const h = nodepath.join(host, name);
    if (fs.statSync(h).isDirectory()) copyIn(h);
    else FS.writeFile(h, fs.readFileSync(h));
  }
}
function copyOut(p) {
  for (const name of FS.readdir(p)) {
    if (name === "." || name === "..") continue;
    const q = p + "/" + name;
    if (FS.isDir(FS.stat(q).mode)) { fs.mkdirSync(q, { recursive: true }); copyOut(q); }
    else fs.writeFileSync(q, FS.readFile(q));
  }
}
for (const d of job.dirs) copyIn(d);
let status = 0;
for (const src of job.chunks) {
  try { mp.runPython(src); } catch (e) { out("\nPYERROR " + String(e.message || e) + "\n"); status = 1; break; }
}
for (const d of job.back || []) copyOut(d);
process.exitCode = status;
