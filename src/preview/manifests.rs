//! Reading what a pull request would apply: YAML (several documents per
//! file) or JSON, from files, directories (their `.yaml`, `.yml` and
//! `.json` files, sorted; with `recursive`, also those of subdirectories)
//! or `-` (standard input). `kind: List` documents are expanded.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One object read, and where from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub origin: String,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid YAML or JSON: {detail}")]
    Parse { origin: String, detail: String },
    #[error("{origin}: a document is not an object with apiVersion and kind")]
    NotAnObject { origin: String },
}

/// Every object in `paths`, in order.
pub fn load(paths: &[String], recursive: bool) -> Result<Vec<Document>, ManifestError> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Read {
                    path: "-".into(),
                    source,
                })?;
            out.extend(parse("(stdin)", &text)?);
            continue;
        }
        for file in files(Path::new(p), recursive)? {
            let origin = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: origin.clone(),
                source,
            })?;
            out.extend(parse(&origin, &text)?);
        }
    }
    Ok(out)
}

/// The manifest files at `path`: itself, or a directory's.
fn files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(files(&e, true)?);
            }
            continue;
        }
        let ext = e.extension().and_then(|x| x.to_str()).unwrap_or_default();
        if matches!(ext, "yaml" | "yml" | "json") {
            out.push(e);
        }
    }
    Ok(out)
}

/// The objects of one file's text.
pub fn parse(origin: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Parse {
        origin: origin.to_string(),
        detail: e.to_string(),
    })?;
    let mut out = Vec::new();
    for value in docs {
        match value {
            // An empty document (`---` with comments only).
            Value::Null => {}
            Value::Object(_) if value["kind"] == "List" => {
                let items = value["items"].as_array().cloned().unwrap_or_default();
                for item in items {
                    out.push(object(origin, item)?);
                }
            }
            other => out.push(object(origin, other)?),
        }
    }
    Ok(out)
}

fn object(origin: &str, value: Value) -> Result<Document, ManifestError> {
    let valid = value.is_object() && value["apiVersion"].is_string() && value["kind"].is_string();
    if !valid {
        return Err(ManifestError::NotAnObject {
            origin: origin.to_string(),
        });
    }
    Ok(Document {
        origin: origin.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "# a comment\n---\napiVersion: cvm.tencentcloud.io/v1alpha1\nkind: CvmInstance\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  instanceType: S5.SMALL1\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

    #[test]
    fn several_documents_empty_ones_and_lists() {
        let docs = parse("a.yaml", TWO).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            (docs[0].kind(), docs[0].name(), docs[0].namespace()),
            ("CvmInstance", "web", Some("shop"))
        );
        assert_eq!(docs[0].value["spec"]["instanceType"], "S5.SMALL1");
        assert_eq!(docs[1].kind(), "ConfigMap");
        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}"#;
        let docs = parse("l.json", list).unwrap();
        let names: Vec<&str> = docs.iter().map(Document::name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let e = parse("bad.yaml", "a: [1, 2").unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml is not valid"), "{e}");
        let e = parse("scalar.yaml", "just text").unwrap_err();
        assert!(matches!(e, ManifestError::NotAnObject { .. }), "{e}");
    }

    #[test]
    fn directories_give_their_manifests_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n");
        write("b.yaml", &cm("b"));
        write("a.yml", &cm("a"));
        write("README.md", "not a manifest");
        write(
            "sub/c.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        );
        let dir_s = dir.path().display().to_string();
        let names = |recursive| -> Vec<String> {
            load(std::slice::from_ref(&dir_s), recursive)
                .unwrap()
                .iter()
                .map(|d| d.name().to_string())
                .collect()
        };
        assert_eq!(names(false), ["a", "b"]);
        assert_eq!(names(true), ["a", "b", "c"]);
        let missing = load(&["/nonexistent/x.yaml".into()], false).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/x.yaml"),
            "{missing}"
        );
    }
}
