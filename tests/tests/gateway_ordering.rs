//! On one connection each command sees the effects of every command before it:
//! a random database script pasted in one write gives exactly the answers the
//! same script gives typed line by line, each after the previous answer, on
//! both stores.

// Integration tests: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_harness;

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU32, Ordering},
};

use gateway_harness::{LineClient, Services, gateway, start};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use quartet_gateway::{GatewayOptions, Protocol, RunningGateway};

/// One line of a script; ids are rendered under a prefix of the run's own.
#[derive(Debug, Clone)]
enum Step {
    Add(&'static str, usize, &'static str),
    Get(&'static str, usize),
    Update(&'static str, usize, &'static str),
    Delete(&'static str, usize),
    List,
    /// A line the gateway or the service refuses.
    Invalid(&'static str),
}

/// A few ids, so scripts keep coming back to the same records; the last one
/// breaks the service's id rules.
const IDS: [&str; 4] = ["a", "b", "c", "bad!id"];
const NAMES: [&str; 3] = ["Ana", "Bea María", "José Ñúñez"];

fn step() -> impl Strategy<Value = Step> {
    let id = 0..IDS.len();
    let name = prop::sample::select(&NAMES[..]);
    prop_oneof![
        4 => (prop::sample::select(&["ADD", "ALTA", "add"][..]), id.clone(), name.clone())
            .prop_map(|(verb, id, name)| Step::Add(verb, id, name)),
        4 => (prop::sample::select(&["GET", "CONSULTA", "consulta"][..]), id.clone())
            .prop_map(|(verb, id)| Step::Get(verb, id)),
        3 => (prop::sample::select(&["UPDATE", "MODIFICACION", "MODIFICACIÓN"][..]), id.clone(), name)
            .prop_map(|(verb, id, name)| Step::Update(verb, id, name)),
        3 => (prop::sample::select(&["DEL", "BAJA", "baja"][..]), id)
            .prop_map(|(verb, id)| Step::Delete(verb, id)),
        2 => Just(Step::List),
        1 => prop::sample::select(&["ADD lonely", "GET", "GET a b", "FOO x", "LIST a b", "DEL"][..])
            .prop_map(Step::Invalid),
    ]
}

impl Step {
    fn line(&self, prefix: &str) -> String {
        match self {
            Self::Add(verb, id, name) | Self::Update(verb, id, name) => {
                format!("{verb} {prefix}-{} {name}", IDS[*id])
            }
            Self::Get(verb, id) | Self::Delete(verb, id) => format!("{verb} {prefix}-{}", IDS[*id]),
            Self::List => format!("LIST {prefix}-"),
            Self::Invalid(line) => (*line).to_owned(),
        }
    }

    /// Answers `OK <n>` and then `n` lines.
    fn counted(&self) -> bool {
        matches!(self, Self::List)
    }
}

/// Reads one answer; a counted one with its lines.
async fn answer(user: &mut LineClient, step: &Step) -> Vec<String> {
    let first = user.line().await;
    let more = match first.strip_prefix("OK ") {
        Some(rest) if step.counted() => rest.split(' ').next().unwrap().parse().unwrap(),
        _ => 0,
    };
    let mut lines = vec![first];
    for _ in 0..more {
        lines.push(user.line().await);
    }
    lines
}

static PREFIXES: AtomicU32 = AtomicU32::new(0);

/// A prefix no other run of this process uses.
fn prefix() -> String {
    format!(
        "p{}x{}",
        std::process::id(),
        PREFIXES.fetch_add(1, Ordering::Relaxed)
    )
}

/// The script's answers with its prefix taken out, so two runs compare.
fn neutral(answers: Vec<Vec<String>>, prefix: &str) -> Vec<Vec<String>> {
    answers
        .into_iter()
        .map(|lines| {
            lines
                .into_iter()
                .map(|line| line.replace(prefix, "P"))
                .collect()
        })
        .collect()
}

async fn one_by_one(gateway: &RunningGateway, script: &[Step]) -> Vec<Vec<String>> {
    let prefix = prefix();
    let mut user = LineClient::connect_to(gateway, Protocol::Database).await;
    let mut answers = Vec::new();
    for step in script {
        user.send(&step.line(&prefix)).await;
        answers.push(answer(&mut user, step).await);
    }
    neutral(answers, &prefix)
}

async fn pasted(gateway: &RunningGateway, script: &[Step]) -> Vec<Vec<String>> {
    let prefix = prefix();
    let mut user = LineClient::connect_to(gateway, Protocol::Database).await;
    let mut paste = String::new();
    for step in script {
        let _ = writeln!(paste, "{}", step.line(&prefix));
    }
    user.send_bytes(paste.as_bytes()).await;
    let mut answers = Vec::new();
    for step in script {
        answers.push(answer(&mut user, step).await);
    }
    neutral(answers, &prefix)
}

fn a_pasted_script_answers_as_if_typed_line_by_line(database_url: Option<String>, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (services, gateway) = runtime.block_on(async {
        let services = Services::start_with_database(database_url).await;
        let gateway = gateway(GatewayOptions::ephemeral(), &services.upstream_options()).await;
        (services, gateway)
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let outcome = runner.run(&prop::collection::vec(step(), 1..40), |script| {
        let (typed, pasted) = runtime.block_on(async {
            (
                one_by_one(&gateway, &script).await,
                pasted(&gateway, &script).await,
            )
        });
        prop_assert_eq!(typed, pasted);
        Ok(())
    });
    runtime.block_on(gateway.stop());
    drop(services);
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn a_pasted_script_on_the_embedded_store_answers_as_if_typed() {
    a_pasted_script_answers_as_if_typed_line_by_line(None, 64);
}

#[test]
fn a_pasted_script_on_postgres_answers_as_if_typed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let test = "gateway ordering on PostgreSQL";
    let Some(schema) = runtime.block_on(quartet_e2e::external::TestSchema::create(test)) else {
        return;
    };
    a_pasted_script_answers_as_if_typed_line_by_line(Some(schema.url.clone()), 32);
    runtime.block_on(schema.drop_schema()).unwrap();
}

/// The issue's own reproduction, answer by answer.
#[tokio::test]
async fn alta_then_consulta_pasted_sees_each_write() {
    let (_services, gateway) = start(GatewayOptions::ephemeral()).await;
    let mut user = LineClient::connect_to(&gateway, Protocol::Database).await;
    user.send_bytes(
        b"ALTA x1 Ana\nCONSULTA x1\nMODIFICACION x1 Bea\nCONSULTA x1\nLIST x\nBAJA x1\nCONSULTA x1\n",
    )
    .await;
    for expected in [
        "OK x1 1 Ana",
        "OK x1 1 Ana",
        "OK x1 2 Bea",
        "OK x1 2 Bea",
        "OK 1",
        "x1 2 Bea",
        "OK x1 deleted",
        "ERR NOT_FOUND person \"x1\" not found",
    ] {
        assert_eq!(user.line().await, expected);
    }
    gateway.stop().await;
}
