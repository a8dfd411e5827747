//! The offline strategy: the question's topic, a SWOT and three options
//! with a recommendation from a playbook per topic, pure so it is
//! unit-tested natively.
use serde::Serialize;

/// One option weighed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyOption {
    pub name: String,
    pub upside: String,
    pub risk: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Swot {
    pub strengths: Vec<String>,
    pub weaknesses: Vec<String>,
    pub opportunities: Vec<String>,
    pub threats: Vec<String>,
}

/// The draft answer for a question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    pub topic: &'static str,
    pub subject: String,
    pub swot: Swot,
    pub options: Vec<StrategyOption>,
    /// Index into `options`.
    pub recommended: usize,
}

struct Play {
    topic: &'static str,
    /// Whole words that point at the topic.
    words: &'static [&'static str],
    swot: [&'static [&'static str]; 4],
    options: [(&'static str, &'static str, &'static str); 3],
    recommended: usize,
}

const PLAYS: &[Play] = &[
    Play {
        topic: "market-entry",
        words: &["enter", "entering", "entry", "expand", "expanding", "expansion", "international", "abroad", "eu", "europe", "european", "emea", "apac", "asia", "usa", "uk", "germany", "france", "localisation", "localization"],
        swot: [
            &["a product that already sells at home", "references from existing customers"],
            &["no local team, brand or partners", "compliance work (e.g. GDPR, VAT, data residency) not yet done"],
            &["customers there underserved by local tools", "partners and resellers who already own the relationships"],
            &["local competitors with a head start", "longer sales cycles and currency risk"],
        ],
        options: [
            ("beachhead: one country first, with a local partner", "fast learning at low cost; proves demand before hiring", "slower total coverage"),
            ("broad launch across the region at once", "captures the whole market early", "expensive, and spreads a small team thin"),
            ("stay home and sell abroad online only", "no fixed cost", "weak against local competitors; compliance still required"),
        ],
        recommended: 0,
    },
    Play {
        topic: "competition",
        words: &["competitor", "competitors", "competition", "compete", "competing", "rival", "rivals", "incumbent"],
        swot: [
            &["focus: a smaller company can serve a niche better", "speed of shipping"],
            &["less budget for sales and marketing", "fewer integrations"],
            &["segments the competitor neglects", "customers unhappy with its price or support"],
            &["a price war", "the competitor copying the differentiator"],
        ],
        options: [
            ("differentiate on a niche the competitor underserves", "defensible, raises willingness to pay", "smaller addressable market"),
            ("compete on price", "quick wins", "erodes margin; easy to match"),
            ("partner or integrate with the competitor's ecosystem", "distribution", "dependence on a rival"),
        ],
        recommended: 0,
    },
    Play {
        topic: "fundraising",
        words: &["raise", "raising", "fundraise", "fundraising", "funding", "investor", "investors", "vc", "runway", "seed", "series"],
        swot: [
            &["traction to show", "a clear use of funds"],
            &["runway pressure weakens negotiation", "metrics not yet benchmarked"],
            &["investors active in the segment", "non-dilutive options (revenue-based financing, grants)"],
            &["a tight funding market", "dilution and loss of control"],
        ],
        options: [
            ("raise now on current traction", "runway and speed", "dilution at today's valuation"),
            ("extend runway and raise after the next milestone", "better terms", "risk if the milestone slips"),
            ("grow on revenue, without raising", "control", "slower growth"),
        ],
        recommended: 1,
    },
    Play {
        topic: "pricing",
        words: &["price", "prices", "pricing", "monetise", "monetize", "monetisation", "monetization", "revenue", "mrr", "churn"],
        swot: [
            &["existing customers who see the value", "usage data to price on"],
            &["pricing not tied to the value delivered", "churn sensitivity"],
            &["packaging (tiers, annual plans, add-ons)", "expansion revenue from larger customers"],
            &["churn after a rise", "competitors undercutting"],
        ],
        options: [
            ("value-based tiers with an annual discount", "higher ARPU and lower churn", "work to repackage"),
            ("raise list prices for new customers only", "safe for the base", "slower effect"),
            ("keep prices and focus on expansion revenue", "no churn risk", "leaves money on the table"),
        ],
        recommended: 0,
    },
    Play {
        topic: "product",
        words: &["product", "feature", "features", "roadmap", "launch", "mvp", "pivot", "platform"],
        swot: [
            &["direct contact with users", "a team that ships"],
            &["a roadmap pulled by the loudest customers", "limited engineering capacity"],
            &["the jobs customers still do by hand", "adjacent segments with the same problem"],
            &["building what nobody pays for", "technical debt slowing every release"],
        ],
        options: [
            ("focus the roadmap on the one job the best customers pay for", "clear positioning, faster delivery", "says no to some customers"),
            ("broaden into a platform", "bigger market", "slower, risks doing everything badly"),
            ("pause features and fix reliability and onboarding", "retention", "no new selling points for a while"),
        ],
        recommended: 0,
    },
];

const GENERAL: Play = Play {
    topic: "growth",
    words: &[],
    swot: [
        &["what customers already pay for", "the team's speed"],
        &["limited capacity and budget", "dependence on a few channels or customers"],
        &["segments and channels not yet tried", "partnerships"],
        &["competitors and market shifts", "cash running short before results"],
    ],
    options: [
        ("double down on the channel and segment that already work", "compounding, cheap to learn", "a ceiling eventually"),
        ("open a new channel or segment", "growth beyond the current ceiling", "cost and distraction"),
        ("improve retention and expansion first", "every later customer is worth more", "slower top-line growth"),
    ],
    recommended: 0,
};

fn words(text: &str) -> Vec<String> {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// The play whose words the question uses most (the general one if none).
fn play_for(text: &str) -> &'static Play {
    let ws = words(text);
    let mut best: Option<(&Play, usize)> = None;
    for play in PLAYS {
        let hits = ws.iter().filter(|w| play.words.contains(&w.as_str())).count();
        if hits > 0 && best.is_none_or(|(_, h)| hits > h) {
            best = Some((play, hits));
        }
    }
    best.map_or(&GENERAL, |(p, _)| p)
}

/// What the question is about: the words after "entering", "into", "for", ...
/// up to the end of the clause ("entering the EU market?" → "the EU market").
pub fn subject(text: &str) -> String {
    let lower = text.to_lowercase();
    for marker in ["entering ", "enter ", "expanding into ", "expand into ", "expand to ", "launch in ", "against ", "about ", "for "] {
        if let Some(at) = lower.find(marker) {
            let rest = &text[at + marker.len()..];
            let clause = rest.split(['?', '.', ';', ',', '!', '\n', ':']).next().unwrap_or("").trim();
            if !clause.is_empty() && clause.len() <= 80 {
                return clause.to_string();
            }
        }
    }
    "the business".to_string()
}

pub fn draft(text: &str) -> Draft {
    let play = play_for(text);
    let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Draft {
        topic: play.topic,
        subject: subject(text),
        swot: Swot { strengths: list(play.swot[0]), weaknesses: list(play.swot[1]), opportunities: list(play.swot[2]), threats: list(play.swot[3]) },
        options: play.options.iter().map(|(n, u, r)| StrategyOption { name: n.to_string(), upside: u.to_string(), risk: r.to_string() }).collect(),
        recommended: play.recommended,
    }
}

impl Draft {
    pub fn recommendation(&self) -> &str {
        &self.options[self.recommended].name
    }

    /// The draft as text for a person.
    pub fn text(&self) -> String {
        let s = &self.swot;
        let options: Vec<String> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| format!("{}. {} — upside: {}; risk: {}", i + 1, o.name, o.upside, o.risk))
            .collect();
        format!(
            "Strategy for {} ({}).\nStrengths: {}.\nWeaknesses: {}.\nOpportunities: {}.\nThreats: {}.\nOptions:\n{}\nRecommendation: {}.",
            self.subject,
            self.topic,
            s.strengths.join("; "),
            s.weaknesses.join("; "),
            s.opportunities.join("; "),
            s.threats.join("; "),
            options.join("\n"),
            self.recommendation()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_subjects_come_from_the_question() {
        let d = draft("What should our strategy be for entering the EU market?");
        assert_eq!((d.topic, d.subject.as_str()), ("market-entry", "the EU market"));
        assert_eq!(d.recommendation(), "beachhead: one country first, with a local partner");
        assert_eq!(draft("how do we beat our competitors").topic, "competition");
        assert_eq!(draft("should we raise a seed round now").topic, "fundraising");
        assert_eq!(draft("what next?").topic, "growth");
        assert_eq!(subject("what next?"), "the business");
    }

    #[test]
    fn the_text_has_a_swot_and_numbered_options() {
        let text = draft("strategy for entering Germany").text();
        assert!(text.starts_with("Strategy for Germany (market-entry)."), "{text}");
        for part in ["Strengths:", "Weaknesses:", "Opportunities:", "Threats:", "1. beachhead", "3. stay home", "Recommendation: beachhead"] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }
}
