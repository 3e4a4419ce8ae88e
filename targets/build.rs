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

/// The covering set: every value of every dimension appears, plus the interesting pairs.
/// Tokens: libc (glibc|musl), linking (pie|nopie|static|staticpie), place (exe|dso|dlopen),
/// model (le|ie|tlsdesc|gd), optional: a16|a64 (PT_TLS alignment, default 8), clang, lld,
/// filler|tunable (dlopen after static TLS is used up), pcanon|pcnone|pcdecoys (mapping, default memfd).
const VARIANTS: &[&str] = &[
    // glibc, gcc, GNU ld: linking x place x access model
    "c-glibc-pie-exe-le",
    "c-glibc-pie-exe-ie",
    "c-glibc-pie-exe-tlsdesc",
    "c-glibc-pie-exe-gd",
    "c-glibc-nopie-exe-le",
    "c-glibc-nopie-exe-ie",
    "c-glibc-static-exe-le",
    "c-glibc-static-exe-ie",
    "c-glibc-staticpie-exe-le",
    "c-glibc-staticpie-exe-tlsdesc",
    "c-glibc-pie-dso-tlsdesc",
    "c-glibc-pie-dso-gd",
    "c-glibc-pie-dso-ie",
    "c-glibc-nopie-dso-tlsdesc",
    "c-glibc-nopie-dso-gd",
    "c-glibc-pie-dlopen-tlsdesc",
    "c-glibc-pie-dlopen-gd",
    "c-glibc-pie-dlopen-ie",
    "c-glibc-pie-dlopen-tlsdesc-filler",
    "c-glibc-pie-dlopen-gd-filler",
    "c-glibc-pie-dlopen-tlsdesc-tunable",
    "c-glibc-pie-dlopen-gd-tunable",
    "c-glibc-nopie-dlopen-tlsdesc-tunable",
    // PT_TLS alignment
    "c-glibc-pie-exe-le-a16",
    "c-glibc-pie-exe-le-a64",
    "c-glibc-nopie-exe-le-a64",
    "c-glibc-static-exe-le-a64",
    "c-glibc-staticpie-exe-le-a64",
    "c-glibc-pie-dso-tlsdesc-a64",
    "c-glibc-pie-dso-gd-a16",
    "c-glibc-pie-dlopen-tlsdesc-a64-tunable",
    "c-glibc-pie-dlopen-gd-a64-filler",
    // clang-14 (no TLSDESC dialect in clang 14) and lld-14
    "c-glibc-pie-exe-le-clang",
    "c-glibc-nopie-exe-ie-clang",
    "c-glibc-static-exe-le-clang",
    "c-glibc-staticpie-exe-le-clang-lld",
    "c-glibc-pie-dso-gd-clang",
    "c-glibc-pie-dso-ie-clang",
    "c-glibc-pie-dlopen-gd-clang-tunable",
    "c-glibc-pie-exe-le-a64-clang-lld",
    "c-glibc-pie-exe-le-lld",
    "c-glibc-nopie-exe-le-lld",
    "c-glibc-pie-dso-tlsdesc-lld",
    "c-glibc-pie-dso-gd-clang-lld",
    "c-glibc-pie-dlopen-tlsdesc-lld-filler",
    // musl (musl-gcc)
    "c-musl-pie-exe-le",
    "c-musl-pie-exe-ie",
    "c-musl-nopie-exe-le",
    "c-musl-static-exe-le",
    "c-musl-static-exe-le-a64",
    "c-musl-staticpie-exe-le",
    "c-musl-pie-dso-tlsdesc",
    "c-musl-pie-dso-gd",
    "c-musl-pie-dso-ie",
    "c-musl-pie-dlopen-tlsdesc",
    "c-musl-pie-dlopen-gd",
    "c-musl-pie-exe-le-a64",
    "c-musl-pie-dso-tlsdesc-a16",
    "c-musl-pie-exe-le-lld",
    "c-musl-pie-dlopen-tlsdesc-a64",
    // process-context mappings
    "c-glibc-pie-exe-le-pcanon",
    "c-glibc-pie-exe-le-pcnone",
    "c-glibc-pie-exe-le-pcdecoys",
    "c-musl-pie-exe-le-pcdecoys",
    "c-glibc-pie-dso-tlsdesc-pcdecoys",
];

// SCENARIOS (every C variant runs all of them) and PLACEMENT_SCENARIOS, shared with lib.rs.
include!("src/scenarios.rs");

/// Filler DSO sizes, in the order writer.c dlopens them (`libfiller-<size>-<index>.so`).
const FILLER_SIZES: &[u32] = &[1024, 1024, 512, 256, 128, 64, 32, 16, 8];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Libc {
    Glibc,
    Musl,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Link {
    Pie,
    NoPie,
    Static,
    StaticPie,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Exe,
    Dso,
    Dlopen,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Model {
    LocalExec,
    InitialExec,
    Tlsdesc,
    GeneralDynamic,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Compiler {
    Gcc,
    Clang,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Linker {
    Bfd,
    Lld,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DynamicTls {
    No,
    Filler,
    Tunable,
}

#[derive(Debug)]
struct Spec {
    name: String,
    libc: Libc,
    link: Link,
    place: Place,
    model: Model,
    align: u32,
    compiler: Compiler,
    linker: Linker,
    dynamic_tls: DynamicTls,
    process_context: &'static str,
}

impl Spec {
    fn parse(name: &str) -> Result<Spec, String> {
        let mut tokens = name.split('-');
        if tokens.next() != Some("c") {
            return Err(format!("{name}: must start with c-"));
        }
        let mut libc = None;
        let mut link = None;
        let mut place = None;
        let mut model = None;
        let mut align = 8;
        let mut compiler = Compiler::Gcc;
        let mut linker = Linker::Bfd;
        let mut dynamic_tls = DynamicTls::No;
        let mut process_context = "memfd";
        for token in tokens {
            match token {
                "glibc" => libc = Some(Libc::Glibc),
                "musl" => libc = Some(Libc::Musl),
                "pie" => link = Some(Link::Pie),
                "nopie" => link = Some(Link::NoPie),
                "static" => link = Some(Link::Static),
                "staticpie" => link = Some(Link::StaticPie),
                "exe" => place = Some(Place::Exe),
                "dso" => place = Some(Place::Dso),
                "dlopen" => place = Some(Place::Dlopen),
                "le" => model = Some(Model::LocalExec),
                "ie" => model = Some(Model::InitialExec),
                "tlsdesc" => model = Some(Model::Tlsdesc),
                "gd" => model = Some(Model::GeneralDynamic),
                "a16" => align = 16,
                "a64" => align = 64,
                "clang" => compiler = Compiler::Clang,
                "lld" => linker = Linker::Lld,
                "filler" => dynamic_tls = DynamicTls::Filler,
                "tunable" => dynamic_tls = DynamicTls::Tunable,
                "pcanon" => process_context = "anon",
                "pcnone" => process_context = "none",
                "pcdecoys" => process_context = "decoys",
                other => return Err(format!("{name}: unknown token {other}")),
            }
        }
        let spec = Spec {
            name: name.to_string(),
            libc: libc.ok_or(format!("{name}: no libc"))?,
            link: link.ok_or(format!("{name}: no linking"))?,
            place: place.ok_or(format!("{name}: no place"))?,
            model: model.ok_or(format!("{name}: no access model"))?,
            align,
            compiler,
            linker,
            dynamic_tls,
            process_context,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Rejects combinations that cannot work (they are not generated, never skipped).
    fn check(&self) -> Result<(), String> {
        let n = &self.name;
        let static_link = matches!(self.link, Link::Static | Link::StaticPie);
        if static_link && self.place != Place::Exe {
            return Err(format!(
                "{n}: a static executable has no DSOs (and static dlopen is out)"
            ));
        }
        if self.model == Model::LocalExec && self.place != Place::Exe {
            return Err(format!("{n}: local-exec exists only in the executable"));
        }
        if self.compiler == Compiler::Clang && self.model == Model::Tlsdesc {
            return Err(format!("{n}: clang-14 has no -mtls-dialect=gnu2 on x86-64"));
        }
        if self.compiler == Compiler::Clang && self.libc == Libc::Musl {
            return Err(format!("{n}: musl is built with musl-gcc only"));
        }
        if self.dynamic_tls != DynamicTls::No
            && (self.place != Place::Dlopen || self.libc != Libc::Glibc)
        {
            return Err(format!(
                "{n}: forcing dynamic TLS applies to glibc dlopen only"
            ));
        }
        if self.model == Model::InitialExec && self.dynamic_tls != DynamicTls::No {
            return Err(format!(
                "{n}: an initial-exec DSO cannot be dlopen'ed without static TLS"
            ));
        }
        Ok(())
    }

    /// Formats the variant publishes: v1 is outside the spec for dlopen'ed modules, so the
    /// dlopen'ed context module defines only the OTEP 4947 symbol.
    fn formats(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.place != Place::Dlopen {
            f.push("v1");
        }
        f.push("v2");
        if self.process_context != "none" {
            f.push("process_context");
        }
        f
    }

    fn env(&self) -> Vec<(String, String)> {
        match self.dynamic_tls {
            DynamicTls::Tunable => {
                vec![(
                    "GLIBC_TUNABLES".to_string(),
                    "glibc.rtld.optional_static_tls=0".to_string(),
                )]
            }
            _ => Vec::new(),
        }
    }

    /// What the writer's `notes.v2_slot_tp_offset` must show: a block in static TLS (near TP) or a
    /// dynamically allocated one. `None`: either is legal (glibc may use surplus static TLS).
    fn tls_block(&self) -> Option<&'static str> {
        match (self.place, self.dynamic_tls) {
            (Place::Dlopen, DynamicTls::No) => None,
            (Place::Dlopen, _) => Some("dynamic"),
            _ => Some("static"),
        }
    }

    fn model_name(&self) -> &'static str {
        match self.model {
            Model::LocalExec => "local-exec",
            Model::InitialExec => "initial-exec",
            Model::Tlsdesc => "tlsdesc",
            Model::GeneralDynamic => "general-dynamic",
        }
    }
}

/// The one place that maps a target triple + libc + compiler to a C compiler.
fn compiler_for(triple: &str, libc: Libc, compiler: Compiler) -> Option<&'static str> {
    let arch = triple.split('-').next().unwrap_or("");
    match (arch, libc, compiler) {
        ("x86_64", Libc::Glibc, Compiler::Gcc) => Some("gcc"),
        ("x86_64", Libc::Glibc, Compiler::Clang) => Some("clang-14"),
        ("x86_64", Libc::Musl, Compiler::Gcc) => Some("musl-gcc"),
        ("aarch64", Libc::Glibc, Compiler::Gcc) => Some("aarch64-linux-gnu-gcc"),
        // cc passes `--target=aarch64-unknown-linux-gnu`; clang then uses Debian's cross sysroot.
        ("aarch64", Libc::Glibc, Compiler::Clang) => Some("clang-14"),
        // xtask's wrapper around the cross gcc with musl's specs file (on PATH in `cargo xtask cross`).
        ("aarch64", Libc::Musl, Compiler::Gcc) => Some("aarch64-linux-musl-gcc"),
        _ => None,
    }
}

/// Whether a variant can be built as named for this target (cases that cannot are not generated).
fn applies_on(spec: &Spec, triple: &str) -> bool {
    let aarch64 = triple.starts_with("aarch64");
    // clang has no traditional dialect on aarch64: its general-dynamic code is TLSDESC, which
    // the `tlsdesc` variants already cover, so a `gd-clang` build there would be misnamed.
    let misnamed =
        aarch64 && spec.compiler == Compiler::Clang && spec.model == Model::GeneralDynamic;
    compiler_for(triple, spec.libc, spec.compiler).is_some() && !misnamed
}

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
