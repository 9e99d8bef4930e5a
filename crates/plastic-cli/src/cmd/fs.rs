//! `plastic fs TARGET ls|cat|rm|mkdir|rmdir`: the files under a node's root.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use plastic_proto::command::{FileList, ListFiles, Made, MakeDir, RemoveDir, RemoveFile, Removed};
use plastic_proto::RelPath;

use super::request::request_each;
use crate::output::Render;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic fs pi-1 ls\n  plastic fs pi-1 cat data/log.csv | tail\n  plastic fs pi-1 rm data/old.csv\n  plastic fs pi-1 mkdir data"
)]
pub struct FsArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    #[command(subcommand)]
    pub action: FsAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum FsAction {
    /// List every file under the node's root with its size in bytes
    Ls,
    /// Write a file's bytes to stdout (one node)
    Cat {
        /// The file's path under the node's root
        path: String,
    },
    /// Remove a file
    Rm {
        /// The file's path under the node's root
        path: String,
    },
    /// Create a directory (its parent must exist)
    Mkdir {
        /// The directory's path under the node's root
        path: String,
    },
    /// Remove an empty directory
    Rmdir {
        /// The directory's path under the node's root
        path: String,
    },
}

pub async fn run(s: &Session, args: FsArgs) -> Result<ExitCode> {
    match args.action {
        FsAction::Ls => {
            let render = Render::typed(|files: FileList| {
                files
                    .iter()
                    .map(|(path, size)| format!("{size:>10}  {path}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            request_each(s, &args.target, &ListFiles, render).await
        }
        FsAction::Rm { path } => {
            let remove = RemoveFile {
                filename: RelPath::parse(&path)?,
            };
            let render = Render::typed(|r: Removed| format!("removed {}", r.removed));
            request_each(s, &args.target, &remove, render).await
        }
        FsAction::Cat { path } => super::download::cat(s, &args.target, &path).await,
        FsAction::Mkdir { path } => {
            let make = MakeDir {
                path: RelPath::parse(&path)?,
            };
            let render = Render::typed(|r: Made| format!("made {}", r.made));
            request_each(s, &args.target, &make, render).await
        }
        FsAction::Rmdir { path } => {
            let remove = RemoveDir {
                path: RelPath::parse(&path)?,
            };
            let render = Render::typed(|r: Removed| format!("removed {}", r.removed));
            request_each(s, &args.target, &remove, render).await
        }
    }
}
