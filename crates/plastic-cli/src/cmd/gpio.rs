//! `plastic gpio read|write` and `plastic blink`: the pins and the on-board LED.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use plastic_proto::command::{BlinkLed, BlinkReply, ReadGpios, WriteGpios};

use super::request::request_each;
use crate::output::Render;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic gpio pi-1 read          # [[0,1],[1,1],[2,1],...]\n  plastic gpio pi-1 read 2 4\n  plastic gpio pi-1 write 2=0 2=1 2=0"
)]
pub struct GpioArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    #[command(subcommand)]
    pub action: GpioAction,
}

#[derive(Debug, Subcommand, Clone)]
pub enum GpioAction {
    /// Print every pin with its value, or only the pins given
    Read {
        /// Pin numbers to read (default: every pin)
        pins: Vec<u32>,
    },
    /// Set pins in order: PIN=VALUE ...
    Write {
        /// PIN=VALUE pairs with VALUE 0 or 1, applied in the order given
        #[arg(required = true)]
        assignments: Vec<String>,
    },
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic blink pi-1 --times 10 --on 0.05 --off 0.05\n  plastic blink all --forever        # until `plastic stop all`"
)]
pub struct BlinkArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// How many times to blink
    #[arg(long, default_value_t = BlinkLed::default().times)]
    pub times: u64,
    /// Blink until `plastic stop` instead of --times
    #[arg(long)]
    pub forever: bool,
    /// Seconds on
    #[arg(long, default_value_t = BlinkLed::default().on_seconds)]
    pub on: f64,
    /// Seconds off
    #[arg(long, default_value_t = BlinkLed::default().off_seconds)]
    pub off: f64,
}

pub async fn gpio(s: &Session, args: GpioArgs) -> Result<ExitCode> {
    match args.action {
        GpioAction::Read { pins } => {
            let read = ReadGpios {
                pins: (!pins.is_empty()).then_some(pins),
            };
            request_each(s, &args.target, &read, Render::Value).await
        }
        GpioAction::Write { assignments } => {
            let write = WriteGpios {
                pins_and_values: assignments
                    .iter()
                    .map(|a| WriteGpios::parse_assignment(a))
                    .collect::<Result<_, _>>()?,
            };
            request_each(s, &args.target, &write, Render::Value).await
        }
    }
}

pub async fn blink(s: &Session, args: BlinkArgs) -> Result<ExitCode> {
    let blink = BlinkLed {
        times: args.times,
        forever: args.forever,
        on_seconds: args.on,
        off_seconds: args.off,
    };
    // The reply only says the blink started; what was asked is ours to tell.
    let said = blink.describe();
    let render = Render::typed(move |_: BlinkReply| said.clone());
    request_each(s, &args.target, &blink, render).await
}
