//! Claims and daily caps across hosts: two `PostgresStorage`s on one
//! database stand for two hosts behind a load balancer (separate pools,
//! nothing shared in the process), and eight threads split between them
//! race for one proposal claim, one agent's HTTP budget and one agent's
//! evolution runs. The database alone must keep each bound.
use std::sync::{Arc, Barrier};

use agentkernel_storage::aws::AwsStore;
use agentkernel_storage::evolution::{EvolutionRequest, EvolutionStore};
use agentkernel_storage::http::{HttpRecord, HttpStore};
use agentkernel_storage::postgres::{PostgresStorage, testing};

const THREADS: usize = 8;
/// Attempts per thread where a bound is counted (well past every cap).
const ATTEMPTS: usize = 5;
/// Races per bound, each on a day of its own (one race may not overlap).
const ROUNDS: i64 = 5;
const DAY: i64 = 86_400 * 300;

/// Two hosts on a fresh database, or `None` when PostgreSQL tests skip.
fn two_hosts(test: &str) -> Option<[Arc<PostgresStorage>; 2]> {
    let url = testing::fresh_database(test)?;
    let host = || Arc::new(PostgresStorage::connect(&url, 4).expect("connecting a host"));
    Some([host(), host()])
}

/// Runs `attempt` on `THREADS` threads, alternating hosts, started together;
/// returns the sum of what they won.
fn race<F>(hosts: &[Arc<PostgresStorage>; 2], attempt: F) -> usize
where
    F: Fn(&PostgresStorage, usize) -> usize + Copy + Send + 'static,
{
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (host, start) = (hosts[i % 2].clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                attempt(&host, i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("a racing thread panicked")).sum()
}

#[test]
fn one_proposal_claim_wins_across_hosts() {
    let Some(hosts) = two_hosts("one_proposal_claim_wins_across_hosts") else { return };
    let id = hosts[0].proposal_add("architect", "more web", "id = \"shop\"").unwrap();
    let won = race(&hosts, move |host, i| {
        usize::from(host.proposal_transition(id, "pending", "applying", &format!("thread {i}")).unwrap())
    });
    assert_eq!(won, 1, "exactly one of {THREADS} claims wins");
    let claimed = hosts[1].proposal_get(id).unwrap().unwrap();
    assert_eq!(claimed.status, "applying");
    assert!(claimed.message.starts_with("thread "), "the winner's message, not overwritten by a loser");
}

fn intent(at: i64) -> HttpRecord {
    HttpRecord {
        at,
        agent: "crawler".into(),
        method: "GET".into(),
        scheme: "https".into(),
        host: "example.org".into(),
        port: 443,
        status: None,
        bytes: 0,
        outcome: "pending".into(),
        elapsed_ms: 0,
    }
}

#[test]
fn the_http_budget_holds_across_hosts() {
    let Some(hosts) = two_hosts("the_http_budget_holds_across_hosts") else { return };
    // Each round is a fresh UTC day: more races, the same bound each time.
    for round in 0..ROUNDS {
        let day = DAY + round * 86_400;
        let granted = race(&hosts, move |host, i| {
            (0..ATTEMPTS).filter(|n| host.http_reserve(&intent(day + (i * ATTEMPTS + n) as i64), day, 10).unwrap().is_some()).count()
        });
        assert_eq!(granted, 10, "day {round}: {} attempts, exactly 10 reservations", THREADS * ATTEMPTS);
        assert!(hosts[1].http_reserve(&intent(day + 999), day, 10).unwrap().is_none(), "and none after");
    }
    let reserved = hosts[0].http_log(Some("crawler"), 1_000).unwrap();
    assert_eq!(reserved.len() as i64, 10 * ROUNDS, "10 rows a day");
}

fn run_request(at: i64) -> EvolutionRequest {
    EvolutionRequest {
        id: 0,
        at,
        agent: "architect".into(),
        action: "evolve".into(),
        target: "shop".into(),
        outcome: "pending".into(),
        run: None,
        detail: String::new(),
    }
}

#[test]
fn evolution_runs_per_day_hold_across_hosts() {
    let Some(hosts) = two_hosts("evolution_runs_per_day_hold_across_hosts") else { return };
    for round in 0..ROUNDS {
        let day = DAY + round * 86_400;
        let granted = race(&hosts, move |host, i| {
            (0..ATTEMPTS)
                .filter(|n| host.evolution_request_reserve(&run_request(day + (i * ATTEMPTS + n) as i64), day, 3).unwrap().is_some())
                .count()
        });
        assert_eq!(granted, 3, "day {round}: {} attempts, exactly 3 runs", THREADS * ATTEMPTS);
        assert!(hosts[1].evolution_request_reserve(&run_request(day + 999), day, 3).unwrap().is_none(), "and none after");
    }
    let reserved = hosts[0].evolution_requests(Some("evolve"), 1_000).unwrap();
    assert_eq!(reserved.len() as i64, 3 * ROUNDS, "3 rows a day");
    assert!(reserved.iter().all(|r| r.outcome == "pending"));
}

#[test]
fn every_evolution_job_is_claimed_by_exactly_one_host() {
    use agentkernel_storage::jobs::{JobQueue, JobState};
    let Some(hosts) = two_hosts("every_evolution_job_is_claimed_by_exactly_one_host") else { return };
    const JOBS: usize = 40;
    let ids: Vec<i64> = (0..JOBS).map(|n| hosts[n % 2].job_enqueue("run", &format!("{{\"n\":{n}}}"), 1_000).unwrap()).collect();
    // Every thread claims and finishes jobs until none is left.
    let done = race(&hosts, move |host, i| {
        let name = format!("host-{}-{i}", i % 2);
        let mut finished = 0;
        while let Some(claim) = host.job_claim(&name, None, 60, 1_000).unwrap() {
            assert!(host.job_finish(&claim, &name, &claim.payload, None).unwrap(), "a fresh claim holds its job");
            finished += 1;
        }
        finished
    });
    assert_eq!(done, JOBS, "each job finished once, none twice");
    for (n, id) in ids.iter().enumerate() {
        match hosts[0].job_state(*id).unwrap() {
            Some(JobState::Done { result, .. }) => assert_eq!(result, format!("{{\"n\":{n}}}")),
            other => panic!("job {id}: {other:?}"),
        }
    }
}
