//! YAML documents for Kubernetes and Compose: built as ordered [`serde_yaml_ng`] trees (a
//! reader expects `apiVersion`, `kind`, `metadata`, `spec` in that order, which a sorted map
//! loses) and written in block style by [`to_string`].
//!
//! Why our own writer: the consumers parse YAML 1.1 (kubectl's go-yaml, docker-compose's
//! PyYAML), where a plain `off`, `yes`, `1_000`, `2001-12-14` or `1:20` is a boolean, number
//! or date. serde_yaml_ng writes those unquoted (it targets YAML 1.2), so an annotation such
//! as `proxy-buffering: off` would be refused as a boolean. Here a string is written plain
//! only when it cannot be read as anything else under either version; otherwise it is
//! double-quoted with JSON escapes, which both versions read back verbatim. The unit tests
//! check every output by parsing it back with serde_yaml_ng.

pub use serde_yaml_ng::Value;
use std::fmt::Write;

/// A mapping of `entries`, in order: `map!{"kind" => "Service", "spec" => map!{...}}`.
/// Values are anything `Into<Value>`: `&str`, `String`, integers, `bool`, `Vec<Value>`, `Value`.
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_yaml_ng::Mapping::new();
        $( m.insert(serde_yaml_ng::Value::from($k), serde_yaml_ng::Value::from($v)); )*
        serde_yaml_ng::Value::Mapping(m)
    }};
}
pub(crate) use map;

/// Adds `key: value` to the mapping `target` (a no-op on anything else).
pub fn insert(target: &mut Value, key: &str, value: impl Into<Value>) {
    if let Value::Mapping(m) = target {
        m.insert(Value::from(key), value.into());
    }
}

/// The YAML text of `doc` (a mapping or sequence), block style, ending with a newline.
pub fn to_string(doc: &Value) -> String {
    let mut out = String::new();
    block(doc, 0, &mut out);
    out
}

/// Words YAML 1.1 reads as booleans or null when plain.
const AMBIGUOUS: [&str; 12] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "", "<<",
];

/// True when `s` can be written plain and read back as the same string by YAML 1.1 and 1.2:
/// it starts with a letter or `/`, holds only letters, digits and `_ . / -`, and is not a
/// boolean or null word.
fn plain_ok(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !AMBIGUOUS.contains(&s.to_ascii_lowercase().as_str())
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).expect("strings serialize"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Mapping(m) if m.is_empty() => "{}".into(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        // Non-empty collections are written as blocks; tags are never built here.
        Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_) => unreachable!("a scalar"),
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Mapping(m) => !m.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        _ => false,
    }
}

/// Writes the non-empty mapping or sequence `value` with its lines indented by `indent`.
fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = scalar(k);
                match v {
                    // Sequences sit at the key's indentation, as kubectl writes them.
                    Value::Sequence(_) if is_block(v) => {
                        let _ = writeln!(out, "{pad}{key}:");
                        block(v, indent, out);
                    }
                    _ if is_block(v) => {
                        let _ = writeln!(out, "{pad}{key}:");
                        block(v, indent + 2, out);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{key}: {}", scalar(v));
                    }
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                if is_block(item) {
                    // The item's block at indent + 2, its first line's indent replaced by "- ".
                    let mut inner = String::new();
                    block(item, indent + 2, &mut inner);
                    let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
                } else {
                    let _ = writeln!(out, "{pad}- {}", scalar(item));
                }
            }
        }
        _ => {
            let _ = writeln!(out, "{pad}{}", scalar(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(doc: &Value) -> String {
        let text = to_string(doc);
        let back: Value = serde_yaml_ng::from_str(&text).expect("our YAML parses");
        assert_eq!(&back, doc, "{text}");
        text
    }

    #[test]
    fn strings_a_yaml_1_1_reader_would_retype_are_quoted_and_read_back_verbatim() {
        let tricky = [
            "off",
            "On",
            "YES",
            "n",
            "~",
            "null",
            "1_000",
            "2001-12-14",
            "1:20",
            "0x1f",
            "012",
            "1e3",
            ".inf",
            "+1",
            "$http_mcp_session_id",
            "a: b",
            "#x",
            "- x",
            "",
            " x",
            "tab\t",
            "quote\"'",
            "new\nline",
            "@scope/pkg",
            "*star",
            "&anchor",
            "!tag",
            "%",
            "'",
        ];
        let doc = map! {
            "list" => tricky.iter().map(|s| Value::from(*s)).collect::<Vec<_>>(),
            "off" => "plain-ok/path_1.2",
        };
        let text = round_trip(&doc);
        assert!(
            text.contains("  - \"off\"\n") || text.contains("- \"off\"\n"),
            "{text}"
        );
        assert!(text.contains("\"off\": plain-ok/path_1.2\n"), "{text}");
        assert!(
            text.contains("- \"1_000\"\n") && text.contains("- \"2001-12-14\"\n"),
            "{text}"
        );
    }

    #[test]
    fn nested_blocks_keep_order_and_indentation() {
        let doc = map! {
            "kind" => "Deployment",
            "spec" => map! {
                "containers" => vec![map! {
                    "name" => "c",
                    "args" => vec!["npx", "-y"],
                    "ports" => vec![map! { "containerPort" => 8080 }],
                }],
                "empty" => map! {},
                "none" => Vec::<Value>::new(),
                "flag" => false,
            },
        };
        let text = round_trip(&doc);
        let expected = "kind: Deployment\nspec:\n  containers:\n  - name: c\n    args:\n    - npx\n    - \"-y\"\n    ports:\n    - containerPort: 8080\n  empty: {}\n  none: []\n  flag: false\n";
        assert_eq!(text, expected);
    }
}
