//! The revenue arithmetic, pure so it is unit-tested natively: metrics read
//! from a request's numbers, what follows from them (ARR, ARPU, lifetime,
//! LTV, LTV:CAC) and price scenarios over twelve months.
use serde::Serialize;

use crate::common::{LabeledNumber, numbers_with_labels};

/// Gross margin assumed for LTV when the request gives none.
pub const ASSUMED_MARGIN: f64 = 0.8;
/// Monthly churn assumed for scenarios when the request gives none.
pub const ASSUMED_CHURN: f64 = 0.03;
/// Price changes compared, as fractions.
pub const PRICE_CHANGES: [f64; 5] = [-0.1, 0.0, 0.1, 0.2, 0.3];

/// What the request states; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stated {
    pub mrr: Option<f64>,
    pub arr: Option<f64>,
    /// Monthly churn as a fraction (4% → 0.04).
    pub churn: Option<f64>,
    pub customers: Option<f64>,
    pub arpu: Option<f64>,
    pub price: Option<f64>,
    pub cac: Option<f64>,
    /// Gross margin as a fraction.
    pub margin: Option<f64>,
}

impl Stated {
    pub fn is_empty(&self) -> bool {
        *self == Stated::default()
    }
}

/// "4%" and "0.04" are both 4%; "4" is 4% too (nobody churns 400% a month).
fn fraction(n: &LabeledNumber) -> f64 {
    if n.percent || n.value >= 1.0 { n.value / 100.0 } else { n.value }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Mrr,
    Arr,
    Churn,
    Margin,
    Cac,
    Arpu,
    Customers,
    Price,
}

/// Which metric a word names, if any.
fn label_of(word: &str) -> Option<Label> {
    const LABELS: &[(Label, &[&str])] = &[
        (Label::Mrr, &["mrr", "monthly", "revenue"]),
        (Label::Arr, &["arr", "annual", "yearly"]),
        (Label::Churn, &["churn", "churning", "attrition"]),
        (Label::Margin, &["margin", "gross"]),
        (Label::Cac, &["cac", "acquisition"]),
        (Label::Arpu, &["arpu", "arpa"]),
        (Label::Customers, &["customers", "users", "subscribers", "accounts", "clients", "seats"]),
        (Label::Price, &["price", "priced", "at", "costs", "pricing"]),
    ];
    LABELS.iter().find(|(_, words)| words.contains(&word)).map(|(label, _)| *label)
}

/// Reads the metrics from `text` by the words around each number: the word
/// right before names it, else the word after, else the one two before
/// ("300 customers at $40" → customers 300, price 40). The first of each wins.
pub fn read_metrics(text: &str) -> Stated {
    let mut s = Stated::default();
    for n in numbers_with_labels(text) {
        let Some(label) = [&n.before, &n.after, &n.before2].iter().find_map(|w| label_of(w)) else { continue };
        let slot = match label {
            Label::Mrr => &mut s.mrr,
            Label::Arr => &mut s.arr,
            Label::Churn => &mut s.churn,
            Label::Margin => &mut s.margin,
            Label::Cac => &mut s.cac,
            Label::Arpu => &mut s.arpu,
            Label::Customers => &mut s.customers,
            Label::Price if n.percent => continue,
            Label::Price => &mut s.price,
        };
        if slot.is_none() {
            *slot = Some(if matches!(label, Label::Churn | Label::Margin) { fraction(&n) } else { n.value });
        }
    }
    s
}

/// The metrics with what follows from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Derived {
    pub mrr: Option<f64>,
    pub arr: Option<f64>,
    pub customers: Option<f64>,
    pub arpu: Option<f64>,
    pub churn: Option<f64>,
    pub lifetime_months: Option<f64>,
    pub margin: f64,
    pub margin_assumed: bool,
    pub ltv: Option<f64>,
    pub ltv_to_cac: Option<f64>,
}

pub fn derive(s: &Stated) -> Derived {
    let customers_times = |per: Option<f64>| s.customers.zip(per).map(|(c, p)| c * p);
    let mrr = s.mrr.or(s.arr.map(|a| a / 12.0)).or(customers_times(s.arpu)).or(customers_times(s.price));
    let arpu = s.arpu.or(mrr.zip(s.customers).filter(|(_, c)| *c > 0.0).map(|(m, c)| m / c)).or(s.price);
    let customers = s.customers.or(mrr.zip(arpu).filter(|(_, a)| *a > 0.0).map(|(m, a)| (m / a).round()));
    let churn = s.churn.filter(|c| *c > 0.0 && *c < 1.0);
    let margin = s.margin.filter(|m| *m > 0.0 && *m <= 1.0);
    let ltv = arpu.zip(churn).map(|(a, c)| a * margin.unwrap_or(ASSUMED_MARGIN) / c);
    Derived {
        mrr,
        arr: mrr.map(|m| m * 12.0),
        customers,
        arpu,
        churn,
        lifetime_months: churn.map(|c| 1.0 / c),
        margin: margin.unwrap_or(ASSUMED_MARGIN),
        margin_assumed: margin.is_none(),
        ltv,
        ltv_to_cac: ltv.zip(s.cac).filter(|(_, c)| *c > 0.0).map(|(l, c)| l / c),
    }
}

/// One price change and its twelve-month outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub change_percent: i32,
    pub price: Option<f64>,
    pub mrr: f64,
    pub churn: f64,
    pub revenue_12_months: f64,
}

/// Revenue over twelve months from `mrr` losing `churn` a month (no new customers).
fn twelve_months(mrr: f64, churn: f64) -> f64 {
    (0..12).map(|m| mrr * (1.0 - churn).powi(m)).sum()
}

/// The scenarios for each of [`PRICE_CHANGES`]. Stated assumptions: a rise
/// of x loses 0.3·x of customers at once and multiplies churn by 1 + 3·x; a
/// cut of x wins 0.15·x and multiplies churn by 1 − 1.5·x.
pub fn scenarios(d: &Derived, price: Option<f64>) -> Vec<Scenario> {
    let Some(mrr) = d.mrr else { return Vec::new() };
    let churn = d.churn.unwrap_or(ASSUMED_CHURN);
    PRICE_CHANGES
        .iter()
        .map(|&x| {
            let (kept, churn_factor) = if x >= 0.0 { (1.0 - 0.3 * x, 1.0 + 3.0 * x) } else { (1.0 - 0.15 * x, 1.0 + 1.5 * x) };
            let new_mrr = mrr * kept * (1.0 + x);
            let new_churn = (churn * churn_factor).min(0.99);
            Scenario {
                change_percent: (x * 100.0).round() as i32,
                price: price.map(|p| p * (1.0 + x)),
                mrr: new_mrr,
                churn: new_churn,
                revenue_12_months: twelve_months(new_mrr, new_churn),
            }
        })
        .collect()
}

/// The scenario with the most twelve-month revenue (the smaller change on a tie).
pub fn best(scenarios: &[Scenario]) -> Option<&Scenario> {
    scenarios.iter().fold(None, |best: Option<&Scenario>, s| match best {
        Some(b) if b.revenue_12_months + 0.5 >= s.revenue_12_months => Some(b),
        _ => Some(s),
    })
}

/// Advice that follows from the numbers, most important first.
pub fn advice(d: &Derived, best: Option<&Scenario>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = d.churn.filter(|c| *c > 0.05) {
        out.push(format!("Churn of {:.1}% a month is high: fix retention (onboarding, annual plans) before raising prices.", c * 100.0));
    }
    if let Some(r) = d.ltv_to_cac {
        if r < 3.0 {
            out.push(format!("LTV:CAC is {r:.1}, under the healthy 3: acquisition costs too much for what a customer brings."));
        } else {
            out.push(format!("LTV:CAC is {r:.1}: room to spend more on acquisition."));
        }
    }
    match best {
        Some(s) if s.change_percent > 0 => out.push(format!("Raise the price {}%: the best twelve-month revenue of the scenarios.", s.change_percent)),
        Some(s) if s.change_percent < 0 => out.push(format!("Cut the price {}%: the churn it saves outweighs the lower price.", -s.change_percent)),
        Some(_) => out.push("Keep the current price: no change in the scenarios earns more over twelve months.".to_string()),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_in_plain_language() {
        let s = read_metrics("How should we price the pro plan; MRR 12000, churn 4%, 300 customers, CAC $500");
        assert_eq!(s.mrr, Some(12000.0));
        assert_eq!(s.churn, Some(0.04));
        assert_eq!(s.customers, Some(300.0));
        assert_eq!(s.cac, Some(500.0));
        let s = read_metrics("ARR is $1.2m and the plan is priced at $49 with 2% churn");
        assert_eq!((s.arr, s.price, s.churn), (Some(1_200_000.0), Some(49.0), Some(0.02)));
        assert!(read_metrics("how should we price the pro plan").is_empty());
    }

    #[test]
    fn derives_arr_arpu_lifetime_and_ltv() {
        let d = derive(&read_metrics("MRR 12000, churn 4%, 300 customers, CAC 500"));
        assert_eq!(d.arr, Some(144_000.0));
        assert_eq!(d.arpu, Some(40.0));
        assert_eq!(d.lifetime_months, Some(25.0));
        assert!((d.ltv.unwrap() - 800.0).abs() < 1e-6, "40 × 0.8 / 0.04");
        assert!((d.ltv_to_cac.unwrap() - 1.6).abs() < 1e-6);
        let d = derive(&read_metrics("300 customers at $40, churn 4%"));
        assert_eq!(d.mrr, Some(12000.0));
    }

    #[test]
    fn scenarios_find_an_interior_best_price() {
        let d = derive(&read_metrics("MRR 12000, churn 4%"));
        let s = scenarios(&d, Some(40.0));
        assert_eq!(s.len(), PRICE_CHANGES.len());
        assert_eq!(best(&s).unwrap().change_percent, 10);
        let low_churn = derive(&read_metrics("MRR 12000, churn 1%"));
        assert!(best(&scenarios(&low_churn, None)).unwrap().change_percent > 10, "loyal customers bear more");
        let high_churn = derive(&read_metrics("MRR 12000, churn 9%"));
        assert!(best(&scenarios(&high_churn, None)).unwrap().change_percent <= 0);
        assert!(scenarios(&derive(&Stated::default()), None).is_empty());
    }
}
