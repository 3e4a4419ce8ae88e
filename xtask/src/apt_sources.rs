//! Reads the machine's apt sources (deb822 `.sources` and one-line `.list`) well enough to find
//! the Debian mirror and write a matching `<codename>-backports` source.

/// One `deb` source: where it points and which suites it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// Parses a deb822 file; disabled paragraphs and `deb-src`-only ones are left out.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in paragraph.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let get = |key: &str| fields.iter().find(|f| f.0 == key).map(|f| f.1.clone());
        let words = |key: &str| {
            get(key)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let types: Vec<String> = words("types");
        if !types.iter().any(|t| t == "deb")
            || get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        sources.push(Source {
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            signed_by: get("signed-by"),
        });
    }
    sources
}

/// Parses one-line `deb [options] URI SUITE COMPONENT...` entries.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(after) = rest.strip_prefix('[') {
            let Some((options, tail)) = after.split_once(']') else {
                continue;
            };
            signed_by = options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by=").map(str::to_string));
            rest = tail;
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        sources.push(Source {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    sources
}

/// The deb822 text of a `<codename>-backports` source using the mirror that serves `<codename>`
/// itself, or `None` when no source serves that suite.
pub fn backports_source(sources: &[Source], codename: &str) -> Option<String> {
    let base = sources
        .iter()
        .find(|s| s.suites.iter().any(|suite| suite == codename))?;
    let signed_by = base
        .signed_by
        .clone()
        .unwrap_or_else(|| "/usr/share/keyrings/debian-archive-keyring.gpg".to_string());
    Some(format!(
        "# Written by `cargo xtask setup`: {codename}-backports from the same mirror as {codename}.\n\
         Types: deb\nURIs: {}\nSuites: {codename}-backports\nComponents: main\nSigned-By: {signed_by}\n",
        base.uris.join(" ")
    ))
}

pub fn has_suite(sources: &[Source], suite: &str) -> bool {
    sources.iter().any(|s| s.suites.iter().any(|x| x == suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_SOURCES: &str = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

    #[test]
    fn backports_uses_the_mirror_of_the_base_suite() {
        let sources = parse_deb822(IMAGE_SOURCES);
        assert_eq!(sources.len(), 2);
        assert!(!has_suite(&sources, "bookworm-backports"));
        let text = backports_source(&sources, "bookworm").unwrap();
        let written = parse_deb822(&text);
        assert_eq!(
            written,
            vec![Source {
                uris: vec!["http://deb.debian.org/debian".into()],
                suites: vec!["bookworm-backports".into()],
                components: vec!["main".into()],
                signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
            }]
        );
    }

    #[test]
    fn disabled_and_source_only_paragraphs_are_ignored() {
        let text = "Types: deb-src\nURIs: http://a/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://b/debian\nSuites: bookworm\n";
        assert!(parse_deb822(text).is_empty());
    }

    #[test]
    fn one_line_sources_with_options() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\ndeb-src http://m/debian bookworm main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(sources[0].components, ["main", "contrib"]);
        assert!(backports_source(&sources, "bookworm")
            .unwrap()
            .contains("URIs: http://m/debian\n"));
        assert!(backports_source(&sources, "trixie").is_none());
    }
}
