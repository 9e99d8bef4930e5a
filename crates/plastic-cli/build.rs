//! Embeds the MicroPython agent (`agent/*.py`) into the binary, for `plastic agent bundle`.

use std::path::Path;

fn main() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agent");
    println!("cargo:rerun-if-changed={}", agent.display());
    let mut files: Vec<_> = std::fs::read_dir(&agent)
        .expect("agent/ exists beside crates/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// The agent's files: (name, source).\npub const AGENT_FILES: &[(&str, &str)] = &[\n",
    );
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.canonicalize().unwrap().display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("agent_files.rs");
    std::fs::write(out, code).unwrap();
}
