// The C writer variants, their build dimensions and which arch each applies to: one list,
// `include!`d by `build.rs` (which builds them) and by xtask (`cargo xtask coverage`, which derives
// the conformance cases without building anything). Plain std code only: a build script and xtask
// cannot import the crate.

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

impl Spec {
    /// What can change the bytes a decoding scenario publishes, or how they are laid out (libc,
    /// compiler, linker, process-context mapping), as `Variant::decoding_class` reports it for C.
    fn decoding_class(&self, triple: &str) -> String {
        [
            "c",
            match self.libc {
                Libc::Glibc => "glibc",
                Libc::Musl => "musl",
            },
            compiler_for(triple, self.libc, self.compiler).unwrap_or(""),
            match self.linker {
                Linker::Bfd => "bfd",
                Linker::Lld => "lld",
            },
            self.process_context,
        ]
        .join("/")
    }

    /// The variant's build dimensions as words, the keys of [`VARIANT_RULES`].
    #[allow(dead_code)] // used by xtask only
    fn traits(&self) -> Vec<String> {
        let words = [
            format!("{:?}", self.libc),
            format!("{:?}", self.link),
            format!("{:?}", self.place),
            self.model_name().to_string(),
            format!("{:?}", self.compiler),
            format!("{:?}", self.linker),
            format!("pc-{}", self.process_context),
        ];
        words.iter().map(|w| w.to_lowercase()).collect()
    }
}

/// Spec rules (conformance/rules.toml) that the placement scenarios of a variant exercise because
/// of how it is built: `a+b` applies to a variant with every trait `a` and `b` of
/// [`Spec::traits`] (libc, linking, place, access model, compiler, linker, `pc-<mapping>`).
/// Read by `cargo xtask coverage`, which attributes them to every placement case of such a variant.
#[allow(dead_code)] // used by xtask only
const VARIANT_RULES: &[(&str, &[&str])] = &[
    ("exe", &["v1-exe-static-offset"]),
    ("dso+tlsdesc", &["v1-dso-tlsdesc"]),
    ("tlsdesc", &["tc-readers-all-models"]),
    ("general-dynamic", &["tc-readers-all-models"]),
    ("initial-exec", &["tc-readers-all-models", "tc-relaxed-static-access"]),
    ("local-exec", &["tc-readers-all-models", "tc-relaxed-static-access"]),
    ("static+bfd", &["v1-ours-symtab-fallback", "tc-ours-symtab-fallback"]),
    ("pc-memfd", &["pc-memfd", "pc-locate-mapping"]),
    ("pc-anon", &["pc-anon-fallback", "pc-prctl-error-ignored"]),
    ("pc-decoys", &["pc-ours-exact-names", "pc-validate-header"]),
    ("pc-none", &["pc-graceful"]),
];
