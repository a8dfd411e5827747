//! The built-in knowledge base and the request classification, pure so
//! they are unit-tested natively.

/// One help article.
#[derive(Debug, PartialEq)]
pub struct Article {
    pub id: &'static str,
    pub title: &'static str,
    /// Words or phrases that point at this article.
    pub keywords: &'static [&'static str],
    pub answer: &'static str,
}

pub const ARTICLES: &[Article] = &[
    Article {
        id: "password-reset",
        title: "Resetting your password",
        keywords: &["password", "reset", "forgot", "locked out", "can't log in", "cannot log in", "can't sign in", "login", "log in", "sign in"],
        answer: "To reset your password, open the sign-in page, choose \"Forgot password\" and enter your account email: the reset link \
arrives within a few minutes and works for 30 minutes. No email? Check spam, or ask an admin of your workspace to send a new invite.",
    },
    Article {
        id: "two-factor",
        title: "Two-factor authentication",
        keywords: &["2fa", "two-factor", "two factor", "authenticator", "verification code", "lost my phone"],
        answer: "Codes from your authenticator app expire every 30 seconds: check your phone's clock is set automatically. Lost the \
phone? Sign in with one of the backup codes saved when you turned 2FA on, then set up 2FA again under Settings → Security.",
    },
    Article {
        id: "billing-invoice",
        title: "Invoices and billing errors",
        keywords: &["invoice", "billing", "billed", "charged", "charge", "receipt", "vat", "overcharged", "double charged", "payment"],
        answer: "Invoices are under Settings → Billing → Invoices (PDF, with your VAT number if you added one). If an invoice is wrong \
(plan, seat count, VAT or a double charge), tell us the invoice number and what it should say: billing corrects it and \
refunds any difference to the original card within 5 business days.",
    },
    Article {
        id: "refund",
        title: "Refunds",
        keywords: &["refund", "money back", "reimburse"],
        answer: "Annual plans can be refunded in full within 14 days of purchase; monthly plans are not refunded but you keep access \
until the end of the paid month. Ask for a refund from Settings → Billing → \"Request a refund\".",
    },
    Article {
        id: "cancel",
        title: "Cancelling or downgrading",
        keywords: &["cancel", "cancellation", "unsubscribe", "downgrade", "stop my subscription"],
        answer: "You can cancel or downgrade any time under Settings → Billing → Change plan. The change takes effect at the end of \
the current billing period, and your data stays available for 30 days after.",
    },
    Article {
        id: "upgrade",
        title: "Upgrading and adding seats",
        keywords: &["upgrade", "add seats", "more seats", "add users", "change plan", "switch plan", "pro plan"],
        answer: "Upgrade or add seats under Settings → Billing → Change plan. You pay the prorated difference today and the new \
plan's features are available at once.",
    },
    Article {
        id: "export",
        title: "Exporting your data",
        keywords: &["export", "download my data", "csv", "backup"],
        answer: "Export everything from Settings → Data → Export: you get a ZIP of CSV files by email within an hour.",
    },
    Article {
        id: "delete-account",
        title: "Deleting your account",
        keywords: &["delete my account", "close my account", "delete account", "gdpr", "erase my data"],
        answer: "The workspace owner can delete the account under Settings → Account → Delete. Everything is erased within 30 days; \
export first if you need a copy.",
    },
    Article {
        id: "api",
        title: "API keys and rate limits",
        keywords: &["api key", "api", "rate limit", "429", "webhook", "token"],
        answer: "Create API keys under Settings → Developers. The API allows 100 requests per minute per key; a 429 reply says how \
long to wait in its Retry-After header.",
    },
];

/// Whether `text` holds `phrase`: as a whole word for one word, as a substring for a phrase.
fn mentions(text: &str, phrase: &str) -> bool {
    if phrase.contains(' ') || phrase.contains('\'') || phrase.contains('-') {
        return text.contains(phrase);
    }
    text.split(|c: char| !c.is_alphanumeric()).any(|w| w == phrase)
}

/// The article most of whose keywords `text` mentions (the first on a tie), if any.
pub fn best_article(text: &str) -> Option<&'static Article> {
    let lower = text.to_lowercase();
    let mut best: Option<(&Article, usize)> = None;
    for article in ARTICLES {
        let hits = article.keywords.iter().filter(|k| mentions(&lower, k)).count();
        if hits > 0 && best.is_none_or(|(_, h)| hits > h) {
            best = Some((article, hits));
        }
    }
    best.map(|(a, _)| a)
}

/// What a support request is.
#[derive(Debug, PartialEq)]
pub enum Kind {
    /// "Status of ticket 3".
    TicketStatus(i64),
    /// Something the product does not do yet.
    FeatureRequest,
    /// A question the knowledge base answers.
    Answer(&'static Article),
    /// Nothing fits: a person should look at it.
    Unknown,
}

const FEATURE_MARKERS: &[&str] = &["feature request", "please add", "can you add", "could you add", "would be great if", "would be nice if", "i wish", "it would help if", "do you support", "is there a way to"];

pub fn classify(text: &str) -> Kind {
    let lower = text.to_lowercase();
    if let Some(n) = ticket_number(&lower) {
        return Kind::TicketStatus(n);
    }
    if FEATURE_MARKERS.iter().any(|m| lower.contains(m)) {
        return Kind::FeatureRequest;
    }
    best_article(&lower).map_or(Kind::Unknown, Kind::Answer)
}

/// The number in "ticket 3" / "ticket #3" / "ticket no. 3".
fn ticket_number(lower: &str) -> Option<i64> {
    let after = &lower[lower.find("ticket")? + "ticket".len()..];
    let digits: String = after.trim_start_matches([' ', '#', '.', 'n', 'o']).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_find_their_article() {
        assert_eq!(best_article("How do I reset my password?").unwrap().id, "password-reset");
        assert_eq!(best_article("my invoice is wrong").unwrap().id, "billing-invoice");
        assert_eq!(best_article("I was double charged, I want a refund").unwrap().id, "billing-invoice");
        assert_eq!(best_article("where are my API keys").unwrap().id, "api");
        assert_eq!(best_article("the chart colours look odd"), None);
        assert_eq!(best_article("reporting is slow"), None, "'reporting' is not 'port'");
    }

    #[test]
    fn requests_are_classified() {
        assert_eq!(classify("what is the status of ticket #12?"), Kind::TicketStatus(12));
        assert_eq!(classify("Feature request: dark mode please"), Kind::FeatureRequest);
        assert_eq!(classify("It would be great if we could export to Excel"), Kind::FeatureRequest);
        assert!(matches!(classify("I forgot my password"), Kind::Answer(a) if a.id == "password-reset"));
        assert_eq!(classify("the dashboard shows yesterday's numbers twice"), Kind::Unknown);
    }
}
