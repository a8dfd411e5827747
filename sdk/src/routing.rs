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
    SkillIndex::new(candidates).match_skills(message, max_agents)
}

/// A candidate's skills, lower-cased and split once.
#[derive(Debug, Clone)]
struct IndexedSkill {
    /// Keywords, and whether each is matched as a phrase (anywhere in the
    /// message) rather than as a word.
    keywords: Vec<(String, bool)>,
    name: String,
    /// The description's words that can score (long enough, not stop words).
    description_words: Vec<String>,
}

/// The candidates prepared for matching many messages: each one's skills
/// split once, and an inverted index from words to the candidates they can
/// score for, so a message costs lookups of its own words plus the scoring
/// of the candidates it touches, however many candidates there are. Scores
/// are exactly [`match_skills`]'s.
#[derive(Debug, Clone, Default)]
pub struct SkillIndex {
    names: Vec<String>,
    skills: Vec<Vec<IndexedSkill>>,
    /// Word → candidates (ascending) with that word as a keyword, skill name
    /// or scoring description word.
    by_word: std::collections::HashMap<String, Vec<u32>>,
    /// Phrase keywords and their candidates, checked against the message.
    phrases: Vec<(String, u32)>,
}

impl SkillIndex {
    pub fn new(candidates: &[Candidate]) -> SkillIndex {
        let mut index = SkillIndex::default();
        for (i, agent) in candidates.iter().enumerate() {
            let i = i as u32;
            let mut skills = Vec::with_capacity(agent.skills.len());
            for skill in &agent.skills {
                let keywords: Vec<(String, bool)> = skill
                    .keywords
                    .iter()
                    .map(|kw| {
                        let kw = kw.to_lowercase();
                        let phrase = kw.contains(' ') || !kw.chars().all(char::is_alphanumeric);
                        (kw, phrase)
                    })
                    .collect();
                let description_words: Vec<String> =
                    words(&skill.description).into_iter().filter(|w| w.len() >= 4 && !STOP_WORDS.contains(&w.as_str())).collect();
                let indexed = IndexedSkill { keywords, name: skill.name.to_lowercase(), description_words };
                for (kw, phrase) in &indexed.keywords {
                    if *phrase {
                        index.phrases.push((kw.clone(), i));
                    } else {
                        index.post(kw, i);
                    }
                }
                index.post(&indexed.name.clone(), i);
                for w in indexed.description_words.clone() {
                    index.post(&w, i);
                }
                skills.push(indexed);
            }
            index.names.push(agent.name.clone());
            index.skills.push(skills);
        }
        index
    }

    fn post(&mut self, word: &str, candidate: u32) {
        let list = self.by_word.entry(word.to_string()).or_default();
        if list.last() != Some(&candidate) {
            list.push(candidate);
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The candidates scoring at least `min_score` for `message`: (index in
    /// the candidates given to [`new`](Self::new), score, what matched),
    /// highest score first, ties in the candidates' order, at most `limit`.
    pub fn rank(&self, message: &str, limit: usize, min_score: u32) -> Vec<(usize, u32, Vec<String>)> {
        let lower = message.to_lowercase();
        // Each distinct word once: a message repeating one word thousands
        // of times costs what it costs once.
        let msg_words = words(message);
        let distinct: std::collections::HashSet<&str> = msg_words.iter().map(String::as_str).collect();
        let mut touched: std::collections::BTreeSet<u32> =
            distinct.iter().filter_map(|w| self.by_word.get(*w)).flatten().copied().collect();
        touched.extend(self.phrases.iter().filter(|(kw, _)| lower.contains(kw.as_str())).map(|(_, i)| *i));
        let has_word = |w: &str| distinct.contains(w);
        let mut scored = Vec::new();
        for i in touched {
            let (score, hits) = self.score(i as usize, &lower, &has_word);
            if score >= min_score.max(1) {
                scored.push((i as usize, score, hits));
            }
        }
        // Highest score first; the stable sort keeps ties in candidate order.
        scored.sort_by(|a, b| b.1.cmp(&a.1));
        scored.truncate(limit);
        scored
    }

    fn score(&self, candidate: usize, lower: &str, has_word: &dyn Fn(&str) -> bool) -> (u32, Vec<String>) {
        let mut score = 0;
        let mut hits: Vec<String> = Vec::new();
        for skill in &self.skills[candidate] {
            for (kw, phrase) in &skill.keywords {
                let hit = if *phrase { lower.contains(kw.as_str()) } else { has_word(kw) };
                if hit {
                    score += 3;
                    hits.push(kw.clone());
                }
            }
            if has_word(&skill.name) && !hits.contains(&skill.name) {
                score += 3;
                hits.push(skill.name.clone());
            }
            let description_hits = skill.description_words.iter().filter(|w| has_word(w)).count() as u32;
            score += description_hits.min(2);
        }
        (score, hits)
    }

    /// [`match_skills`] over the indexed candidates.
    pub fn match_skills(&self, message: &str, max_agents: usize) -> SkillMatch {
        let scored = self.rank(message, max_agents.max(1), 3);
        let reason = if scored.is_empty() {
            "no agent's skills match the message".to_string()
        } else {
            let parts: Vec<String> = scored.iter().map(|(i, _, hits)| format!("{} ({})", self.names[*i], hits.join(", "))).collect();
            format!("skill keywords matched: {}", parts.join("; "))
        };
        SkillMatch { agents: scored.into_iter().map(|(i, _, _)| self.names[i].clone()).collect(), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, skills: &[(&str, &str, &[&str])]) -> Candidate {
        Candidate {
            name: name.into(),
            description: String::new(),
            skills: skills
                .iter()
                .map(|(n, d, k)| CandidateSkill { name: (*n).into(), description: (*d).into(), keywords: k.iter().map(|s| s.to_string()).collect() })
                .collect(),
        }
    }

    #[test]
    fn the_index_scores_only_touched_candidates_and_ranks_like_a_full_scan() {
        let mut candidates = vec![
            candidate("notes", &[("remember", "Remember notes for later", &["remember", "note"])]),
            candidate("summarizer", &[("summarize", "Summarize long text", &["summary", "tl;dr", "sum up"])]),
            candidate("weather", &[("forecast", "Tell the weather forecast", &["weather", "rain"])]),
        ];
        for i in 0..500 {
            candidates.push(candidate(&format!("filler-{i}"), &[(&format!("skill{i}"), "Does unrelated things", &[&format!("word{i}")])]));
        }
        let index = SkillIndex::new(&candidates);
        let m = index.match_skills("please remember this note and sum up the rain", 3);
        assert_eq!(m.agents, ["notes", "summarizer", "weather"], "{m:?}");
        assert_eq!(m.reason, "skill keywords matched: notes (remember, note); summarizer (sum up); weather (rain)");
        assert_eq!(index.match_skills("tl;dr please", 3).agents, ["summarizer"], "a phrase keyword");
        assert_eq!(index.match_skills("word42 and word7", 5).agents, ["filler-7", "filler-42"], "ties in candidate order");
        assert!(index.match_skills("nothing here", 3).agents.is_empty());
        // A description word alone scores 1: enough for a shortlist, not a match.
        let forecast_only = index.rank("a forecast", 10, 1);
        assert_eq!(forecast_only.iter().map(|(i, s, _)| (candidates[*i].name.as_str(), *s)).collect::<Vec<_>>(), [("weather", 4)]);
        assert_eq!(index.rank("the unrelated", 1000, 1).len(), 500, "a shared description word touches every filler");
    }

    #[test]
    fn words_give_stems_and_keep_tldr() {
        assert!(words("Notes!").contains(&"note".to_string()));
        assert!(words("tl;dr please").contains(&"tl;dr".to_string()));
    }
}
