//! Offline skill matching: which agents' skills fit a message.
//!
//! Plain Rust over plain data (no guest bindings), so the one rule serves
//! both the bundled `router` agent (its offline default) and the host (its
//! fallback when the router agent is missing or fails): routing reads the
//! same whichever of the two did it.
use serde::{Deserialize, Serialize};

/// An agent as routing sees it: its name and skills (from its manifest).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Candidate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub skills: Vec<CandidateSkill>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CandidateSkill {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// The agents chosen, best first, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SkillMatch {
    pub agents: Vec<String>,
    pub reason: String,
}

/// Lower-case words of `text`, with a plural/gerund form also giving its stem
/// ("notes" → "note", "summarizing" → "summariz").
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != ';').filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        for suffix in ["ing", "es", "s", "ed"] {
            if w.len() > suffix.len() + 2 {
                if let Some(stem) = w.strip_suffix(suffix) {
                    out.push(stem.to_string());
                }
            }
        }
        out.push(w);
    }
    out
}

const STOP_WORDS: &[&str] = &["the", "and", "for", "with", "that", "this", "from", "what", "your", "text", "a", "an", "of", "to"];

/// Scores each candidate against the message: a keyword or skill name in
/// the message scores 3, a word of a skill's description 1 (at most 2 per
/// skill); 3 is needed. Highest score first, ties in `candidates`' order,
/// at most `max_agents` (and at least one slot).
pub fn match_skills(message: &str, candidates: &[Candidate], max_agents: usize) -> SkillMatch {
    let lower = message.to_lowercase();
    let msg_words = words(message);
    let has_word = |w: &str| msg_words.iter().any(|m| m == w);
    let mut scored: Vec<(u32, &str, Vec<String>)> = Vec::new();
    for agent in candidates {
        let mut score = 0;
        let mut hits = Vec::new();
        for skill in &agent.skills {
            for kw in &skill.keywords {
                let kw = kw.to_lowercase();
                let hit = if kw.contains(' ') || !kw.chars().all(char::is_alphanumeric) { lower.contains(&kw) } else { has_word(&kw) };
                if hit {
                    score += 3;
                    hits.push(kw);
                }
            }
            let name = skill.name.to_lowercase();
            if has_word(&name) && !hits.contains(&name) {
                score += 3;
                hits.push(name);
            }
            let description_hits = words(&skill.description)
                .into_iter()
                .filter(|w| w.len() >= 4 && !STOP_WORDS.contains(&w.as_str()) && has_word(w))
                .count() as u32;
            score += description_hits.min(2);
        }
        if score >= 3 {
            scored.push((score, &agent.name, hits));
        }
    }
    // Highest score first; the stable sort keeps ties in the given order.
    scored.sort_by(|a, b| b.0.cmp(&a.0));
    scored.truncate(max_agents.max(1));
    let reason = if scored.is_empty() {
        "no agent's skills match the message".to_string()
    } else {
        let parts: Vec<String> = scored.iter().map(|(_, name, hits)| format!("{name} ({})", hits.join(", "))).collect();
        format!("skill keywords matched: {}", parts.join("; "))
    };
    SkillMatch { agents: scored.into_iter().map(|(_, n, _)| n.to_string()).collect(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_give_stems_and_keep_tldr() {
        assert!(words("Notes!").contains(&"note".to_string()));
        assert!(words("tl;dr please").contains(&"tl;dr".to_string()));
    }
}
