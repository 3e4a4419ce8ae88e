//! Builds the C writer variants of conformance.md section 5 (toolchain x libc x linking x where the
//! TLS symbol lives x access model x PT_TLS alignment x process-context mapping) with the `cc` crate's
//! compiler detection, and writes the catalogue (`$OUT_DIR/catalogue.json`) that `src/lib.rs` exposes.
//!
//! A variant is described entirely by its name, e.g. `c-glibc-pie-dso-tlsdesc-a64-lld`: tokens are
//! parsed by `Spec::parse`, so adding a variant is adding a name to `VARIANTS`. A combination that
//! cannot work (static musl + dlopen, clang-14 + TLSDESC, ...) is rejected by `Spec::parse` and
//! must not be listed. A missing compiler is a build error that names `cargo xtask setup`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

// VARIANTS, `Spec` (parsed from a variant name), `compiler_for` and `applies_on`, shared with
// xtask.
include!("src/variants.rs");

// SCENARIOS (every C variant runs all of them) and PLACEMENT_SCENARIOS, shared with lib.rs.
include!("src/scenarios.rs");

/// Filler DSO sizes, in the order writer.c dlopens them (`libfiller-<size>-<index>.so`).
const FILLER_SIZES: &[u32] = &[1024, 1024, 512, 256, 128, 64, 32, 16, 8];

/// The lld binary for `-fuse-ld=lld` (found through a `-B` directory with an `ld.lld` link).
const LLD: &str = "ld.lld-14";

struct Builder {
    triple: String,
    host: String,
    c_dir: PathBuf,
    out_root: PathBuf,
    lld_dir: PathBuf,
}

impl Builder {
    fn tool(&self, libc: Libc, compiler: Compiler) -> Result<cc::Tool, String> {
        let cc_name = compiler_for(&self.triple, libc, compiler)
            .ok_or_else(|| format!("no {compiler:?} for {libc:?} on {}", self.triple))?;
        let mut build = cc::Build::new();
        build
            .compiler(cc_name)
            .target(&self.triple)
            .host(&self.host)
            .opt_level(1)
            .debug(true)
            .pic(false)
            .warnings(false)
            .cargo_metadata(false);
        if compiler == Compiler::Clang && self.triple != self.host {
            // cc's `--target=aarch64-unknown-linux-gnu` makes clang look for
            // `aarch64-unknown-linux-gnu-ld`; Debian's cross binutils and sysroot answer to the
            // short triple, which a later `--target` selects.
            let arch = self.triple.split('-').next().unwrap_or("");
            build.flag(format!("--target={arch}-linux-gnu"));
        }
        let tool = build
            .try_get_compiler()
            .map_err(|e| format!("{cc_name}: {e}; run `cargo xtask setup`"))?;
        Ok(tool)
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        let out = cmd.output().map_err(|e| {
            format!(
                "{what}: cannot run {:?}: {e}; install the toolchains with `cargo xtask setup`",
                cmd.get_program()
            )
        })?;
        if !out.status.success() {
            return Err(format!(
                "{what} failed: {:?}\n{}{}",
                cmd,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    fn command(&self, spec: &Spec) -> Result<Command, String> {
        let tool = self.tool(spec.libc, spec.compiler)?;
        let mut cmd = tool.to_command();
        cmd.args(["-std=gnu11", "-pthread", "-Wall"]);
        cmd.arg(format!("-I{}", self.c_dir.display()));
        if spec.linker == Linker::Lld {
            cmd.arg(format!("-B{}", self.lld_dir.display()))
                .arg("-fuse-ld=lld");
        }
        Ok(cmd)
    }

    /// Access-model flags; the TLS dialect names differ per architecture (x86-64 gnu/gnu2,
    /// aarch64 trad/desc).
    fn model_flags(&self, spec: &Spec) -> Vec<&'static str> {
        let aarch64 = self.triple.starts_with("aarch64");
        let (traditional, descriptors) = if aarch64 {
            ("-mtls-dialect=trad", "-mtls-dialect=desc")
        } else {
            ("-mtls-dialect=gnu", "-mtls-dialect=gnu2")
        };
        match spec.model {
            Model::LocalExec => vec!["-ftls-model=local-exec"],
            Model::InitialExec => vec!["-ftls-model=initial-exec"],
            Model::Tlsdesc => vec!["-ftls-model=global-dynamic", descriptors],
            Model::GeneralDynamic if spec.compiler == Compiler::Gcc => {
                vec!["-ftls-model=global-dynamic", traditional]
            }
            Model::GeneralDynamic => vec!["-ftls-model=global-dynamic"],
        }
    }

    fn ctx_defines(spec: &Spec, has_v1: bool) -> Vec<String> {
        vec![
            format!("-DCTX_HAS_V1={}", u8::from(has_v1)),
            format!("-DCTX_ALIGN={}", spec.align),
        ]
    }

    fn build_filler(&self, spec: &Spec, dir: &Path, size: u32, index: usize) -> Result<(), String> {
        let mut cmd = self.command(spec)?;
        cmd.args(["-shared", "-fPIC", &format!("-DFILLER_SIZE={size}")]);
        cmd.arg(self.c_dir.join("filler.c"));
        cmd.arg("-o")
            .arg(dir.join(format!("libfiller-{size}-{index}.so")));
        self.run(cmd, &format!("{}: filler {size}", spec.name))
    }

    /// Builds one variant into `$OUT_DIR/c/<name>/` and returns its executable.
    fn build(&self, spec: &Spec) -> Result<PathBuf, String> {
        let dir = self.out_root.join(&spec.name);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let exe = dir.join(&spec.name);
        let dlist = dir.join("dynamic-list");
        fs::write(
            &dlist,
            "{ custom_labels_abi_version; custom_labels_current_set; otel_thread_ctx_v1; };\n",
        )
        .map_err(|e| e.to_string())?;

        let mut cmd = self.command(spec)?;
        cmd.arg(format!("-DWRITER_NAME=\"{}\"", spec.name));
        cmd.arg(format!("-DPC_MODE_DEFAULT=\"{}\"", spec.process_context));
        match spec.link {
            Link::Pie => cmd.args(["-fPIE", "-pie"]),
            Link::NoPie => cmd.args(["-fno-pie", "-no-pie"]),
            Link::Static => cmd.args(["-fno-pie", "-static"]),
            Link::StaticPie => cmd.args(["-fPIE", "-static-pie"]),
        };
        for source in ["writer.c", "buf.c", "pc.c"] {
            cmd.arg(self.c_dir.join(source));
        }
        match spec.place {
            Place::Exe => {
                cmd.args(self.model_flags(spec));
                cmd.args(Self::ctx_defines(spec, true));
                cmd.arg(self.c_dir.join("ctx_tls.c"));
                cmd.arg(format!("-Wl,--dynamic-list={}", dlist.display()));
            }
            Place::Dso => {
                // v1 rule: a DSO defining the v1 symbols must be named libcustomlabels*.so.
                let dso = dir.join("libcustomlabels.so");
                let mut lib = self.command(spec)?;
                lib.args(["-shared", "-fPIC"]).args(self.model_flags(spec));
                lib.args(Self::ctx_defines(spec, true));
                lib.arg(self.c_dir.join("ctx_tls.c")).arg("-o").arg(&dso);
                self.run(lib, &format!("{}: libcustomlabels.so", spec.name))?;
                cmd.arg(&dso).arg("-Wl,-rpath,$ORIGIN");
            }
            Place::Dlopen => {
                let dso = dir.join("libotelctx.so");
                let mut lib = self.command(spec)?;
                lib.args(["-shared", "-fPIC"]).args(self.model_flags(spec));
                lib.args(Self::ctx_defines(spec, false));
                lib.arg(self.c_dir.join("ctx_tls.c")).arg("-o").arg(&dso);
                self.run(lib, &format!("{}: libotelctx.so", spec.name))?;
                cmd.arg("-DCTX_DLOPEN=\"libotelctx.so\"").arg("-ldl");
                if spec.dynamic_tls == DynamicTls::Filler {
                    cmd.arg("-DCTX_FILLERS=1");
                    for (index, size) in FILLER_SIZES.iter().enumerate() {
                        self.build_filler(spec, &dir, *size, index)?;
                    }
                }
            }
        }
        cmd.arg("-o").arg(&exe);
        self.run(cmd, &format!("{}: executable", spec.name))?;
        Ok(exe)
    }
}

impl Builder {
    /// The hostile target (`c/hostile.c`): a program of its own, not a catalogue variant, built
    /// like `c-glibc-pie-exe-ie` (glibc, gcc, PIE executable, initial-exec TLS) so that its context
    /// symbols sit at a fixed offset from the thread pointer. Returns its path.
    fn build_hostile(&self) -> Result<PathBuf, String> {
        let spec = Spec::parse("c-glibc-pie-exe-ie")?;
        let dir = self.out_root.join("hostile");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let dlist = dir.join("dynamic-list");
        fs::write(
            &dlist,
            "{ custom_labels_abi_version; custom_labels_current_set; otel_thread_ctx_v1; };\n",
        )
        .map_err(|e| e.to_string())?;
        let exe = dir.join("hostile");
        let mut cmd = self.command(&spec)?;
        cmd.args(["-fPIE", "-pie"]);
        cmd.args(self.model_flags(&spec));
        cmd.args(Self::ctx_defines(&spec, true));
        for source in ["hostile.c", "buf.c", "pc.c", "ctx_tls.c"] {
            cmd.arg(self.c_dir.join(source));
        }
        cmd.arg(format!("-Wl,--dynamic-list={}", dlist.display()));
        cmd.arg("-o").arg(&exe);
        self.run(cmd, "hostile target")?;
        Ok(exe)
    }
}

fn json_str(s: &str) -> serde_json::Value {
    serde_json::Value::String(s.to_string())
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let triple = env::var("TARGET").expect("TARGET");
    let host = env::var("HOST").expect("HOST");
    let c_dir = manifest.join("c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c");

    let out_root = out.join("c");
    let lld_dir = out.join("lld-bin");
    fs::create_dir_all(&lld_dir).expect("create lld dir");
    let lld_link = lld_dir.join("ld.lld");
    if !lld_link.exists() {
        let lld = which(LLD).unwrap_or_else(|| PathBuf::from(format!("/usr/bin/{LLD}")));
        std::os::unix::fs::symlink(&lld, &lld_link).expect("symlink ld.lld");
    }
    let builder = Builder {
        triple: triple.clone(),
        host,
        c_dir,
        out_root,
        lld_dir,
    };

    // The hostile target exists on every arch that has glibc gcc (both do).
    builder
        .build_hostile()
        .unwrap_or_else(|e| panic!("hostile target failed to build:\n{e}"));

    let specs: Vec<Spec> = VARIANTS
        .iter()
        .map(|name| Spec::parse(name).unwrap_or_else(|e| panic!("bad variant name: {e}")))
        .filter(|spec| applies_on(spec, &triple))
        .collect();

    // Two at a time: the machine has two cores.
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<PathBuf, String>>>> =
        specs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= specs.len() {
                    break;
                }
                let r = builder.build(&specs[i]);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });

    let mut catalogue = Vec::new();
    let mut failures = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        match result.into_inner().unwrap().expect("every variant built") {
            Ok(exe) => {
                let env: Vec<serde_json::Value> = spec
                    .env()
                    .iter()
                    .map(|(k, v)| serde_json::json!([k, v]))
                    .collect();
                catalogue.push(serde_json::json!({
                    "name": spec.name,
                    "executable": exe.display().to_string(),
                    "args": [],
                    "env": env,
                    "scenarios": SCENARIOS,
                    "formats": spec.formats(),
                    "libc": format!("{:?}", spec.libc).to_lowercase(),
                    "linking": format!("{:?}", spec.link).to_lowercase(),
                    "place": format!("{:?}", spec.place).to_lowercase(),
                    "access_model": spec.model_name(),
                    "tls_align": spec.align,
                    "compiler": json_str(compiler_for(&triple, spec.libc, spec.compiler).unwrap_or("")),
                    "linker": if spec.linker == Linker::Lld { "lld" } else { "bfd" },
                    "process_context": spec.process_context,
                    "tls_block": spec.tls_block(),
                    "decoding_class": spec.decoding_class(&triple),
                }));
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} C variant(s) failed to build:\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    let text = serde_json::to_string_pretty(&catalogue).expect("catalogue json");
    fs::write(out.join("catalogue.json"), text).expect("write catalogue");
}

fn which(program: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
