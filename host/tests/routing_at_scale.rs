//! Routing with many agents loaded: the router agent is offered a bounded
//! shortlist (`[chat] router_candidates`) of the agents whose skills the
//! message touches, found through the host's skill index, so what routing
//! costs does not grow with every agent loaded.
use std::net::SocketAddr;

use sandbox_tests::llm_server::ScriptedLlm;
use sandbox_tests::{TestHost, numbered_agent};
use serde_json::{Value, json};

/// A host with the bundled router (its model answers nothing usable, so it
/// matches skills itself) and `agents` generated agents.
async fn host_with(agents: u32, llm: &ScriptedLlm) -> (TestHost, SocketAddr) {
    let h = TestHost::new(&format!("[agents.router]\nllm = {{ profiles = [\"fast\"] }}\n{}", llm.config()));
    h.install("router", "router.wasm");
    for n in 0..agents {
        std::fs::write(h.agents_dir().join(format!("gen-{n:06}.wasm")), numbered_agent(n)).unwrap();
    }
    let addr = h.serve().await;
    (h, addr)
}

async fn chat(addr: SocketAddr, message: &str) -> Value {
    let r = reqwest::Client::new().post(format!("http://{addr}/v1/chat")).json(&json!({"message": message})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn router_fuel(r: &Value) -> u64 {
    let span = r["trace"].as_array().unwrap().iter().find(|s| s["agent"] == "router").unwrap_or_else(|| panic!("no router span: {r}"));
    span["fuel"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_is_offered_a_shortlist_so_its_cost_does_not_grow_with_the_agents() {
    let llm = ScriptedLlm::start(vec![]).await;
    let (_few, few) = host_with(16, &llm).await;
    let (_many, many) = host_with(60, &llm).await;
    let agents: Value = reqwest::get(format!("http://{many}/v1/agents")).await.unwrap().json().await.unwrap();
    assert_eq!(agents["agents"].as_array().unwrap().len(), 61, "{}", agents["failed_files"]);

    // An agent far past the first 16 (in name order) is found and chosen by the router.
    let r = chat(many, "tell me about topic000057 please").await;
    assert_eq!(r["agents"], json!(["gen-000057"]), "{r}");
    assert_eq!(r["route"]["by"], "router", "{r}");
    assert_eq!(r["answer"], "gen-000057: tell me about topic000057 please");

    // With 16 agents the router reads all 16 manifests; with 60 a shortlist
    // of 16 (the word "about" of every description touches them all): the
    // same cost, where all 60 manifests would cost several times more.
    let r_few = chat(few, "tell me about topic000005 please").await;
    assert_eq!(r_few["agents"], json!(["gen-000005"]), "{r_few}");
    let (fuel_few, fuel_many) = (router_fuel(&r_few), router_fuel(&r));
    assert!(fuel_many * 10 <= fuel_few * 11, "router fuel with 60 agents {fuel_many} vs with 16 agents {fuel_few}");

    // A message touching many agents' skills still offers at most 16, best first.
    let mentions: Vec<String> = (40..60).map(|n| format!("topic{n:06}")).collect();
    let r = chat(many, &mentions.join(" ")).await;
    assert_eq!(r["agents"].as_array().unwrap().len(), 3, "max_agents of the shortlist: {r}");
    // Nothing touched: the router is offered 16 agents in name order, none
    // of which fits, and the answer says what can be asked.
    let r = chat(many, "good morning").await;
    assert_eq!(r["status"], "no-match", "{r}");
}
