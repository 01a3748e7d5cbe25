//! The payer's language and how it writes money. kassa's payer pages speak the languages of the
//! seeds' markets — English, Brazilian Portuguese, Dutch, German, French, Italian, Polish — and
//! pick one from the merchant's wish, the browser's `Accept-Language`, the order's country, in
//! that order, else English. Amounts are written as each locale writes them (a small table,
//! tested against CLDR's patterns for these locales): "R$ 12,34", "€ 25,00", "25,00 €".

use crate::money::{AmountMinor, Currency};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    PtBr,
    Nl,
    De,
    Fr,
    It,
    Pl,
}

/// The most `Accept-Language` entries looked at (a header can be long; the first few decide).
const MAX_ACCEPT_ENTRIES: usize = 16;

impl Locale {
    pub const ALL: [Locale; 7] = [
        Locale::En,
        Locale::PtBr,
        Locale::Nl,
        Locale::De,
        Locale::Fr,
        Locale::It,
        Locale::Pl,
    ];

    /// The BCP 47 tag of the pages' `lang` attribute.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::PtBr => "pt-BR",
            Locale::Nl => "nl",
            Locale::De => "de",
            Locale::Fr => "fr",
            Locale::It => "it",
            Locale::Pl => "pl",
        }
    }

    /// A language tag's locale by its primary language (`pt-PT` → Brazilian Portuguese, the
    /// Portuguese kassa speaks; `de-AT`, `nl-BE`, `fr-BE` → German, Dutch, French).
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Some(match primary.as_str() {
            "en" => Locale::En,
            "pt" => Locale::PtBr,
            "nl" => Locale::Nl,
            "de" => Locale::De,
            "fr" => Locale::Fr,
            "it" => Locale::It,
            "pl" => Locale::Pl,
            _ => return None,
        })
    }

    /// The language of a country (ISO 3166-1 numeric, as orders carry it). Belgium speaks
    /// Dutch and French: Dutch, the majority's; its browsers usually say which.
    pub fn of_country(code: &str) -> Option<Locale> {
        Some(match code {
            "040" | "276" => Locale::De,
            "056" | "528" => Locale::Nl,
            "076" => Locale::PtBr,
            "250" => Locale::Fr,
            "380" => Locale::It,
            "616" => Locale::Pl,
            _ => return None,
        })
    }

    /// The browser's best language kassa speaks, by `q` weight, first listed first on a tie.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(u16, Locale)> = None;
        for entry in header.split(',').take(MAX_ACCEPT_ENTRIES) {
            let mut parts = entry.split(';');
            let Some(locale) = parts.next().and_then(Locale::from_tag) else {
                continue;
            };
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, quality_per_mille);
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, locale));
            }
        }
        best.map(|(_, locale)| locale)
    }

    /// The payer's locale: the merchant's `language` if kassa speaks it, else the browser's,
    /// else the order's country's (a BRL order is Brazil's), else English.
    pub fn negotiate(
        requested: Option<&str>,
        accept_language: Option<&str>,
        country: Option<&str>,
        currency: Currency,
    ) -> Locale {
        requested
            .and_then(Locale::from_tag)
            .or_else(|| accept_language.and_then(Locale::from_accept_language))
            .or_else(|| country.and_then(Locale::of_country))
            .or((currency == Currency::Brl).then_some(Locale::PtBr))
            .unwrap_or(Locale::En)
    }

    /// An amount as this locale writes it, with the currency's sign.
    pub fn money(self, amount: AmountMinor, currency: Currency) -> String {
        let (group, decimal) = self.separators();
        let abs = amount.0.unsigned_abs();
        let number = format!("{}{decimal}{:02}", grouped(abs / 100, group), abs % 100);
        let sign = if amount.0 < 0 { "-" } else { "" };
        let symbol = self.symbol(currency);
        match self {
            Locale::En => format!("{sign}{symbol}{number}"),
            Locale::PtBr | Locale::Nl => format!("{sign}{symbol}\u{a0}{number}"),
            Locale::De | Locale::Fr | Locale::It | Locale::Pl => {
                format!("{sign}{number}\u{a0}{symbol}")
            }
        }
    }

    /// A date and time as this locale writes it, numerically (`03/12/2026 14:32` in pt-BR,
    /// `03.12.2026 14:32` in German, `2026-12-03 14:32` in English, which sidesteps the
    /// day/month order question).
    pub fn date_time(self, year: i16, month: i8, day: i8, hour: i8, minute: i8) -> String {
        let time = format!("{hour:02}:{minute:02}");
        match self {
            Locale::En => format!("{year:04}-{month:02}-{day:02} {time}"),
            Locale::PtBr | Locale::Fr | Locale::It => {
                format!("{day:02}/{month:02}/{year:04} {time}")
            }
            Locale::Nl => format!("{day:02}-{month:02}-{year:04} {time}"),
            Locale::De | Locale::Pl => format!("{day:02}.{month:02}.{year:04} {time}"),
        }
    }

    /// Thousands and decimal separators.
    fn separators(self) -> (&'static str, &'static str) {
        match self {
            Locale::En => (",", "."),
            Locale::PtBr | Locale::Nl | Locale::De | Locale::It => (".", ","),
            // CLDR: a narrow no-break space in French, a no-break space in Polish.
            Locale::Fr => ("\u{202f}", ","),
            Locale::Pl => ("\u{a0}", ","),
        }
    }

    /// The currency's sign in this locale (CLDR's short symbols).
    fn symbol(self, currency: Currency) -> &'static str {
        match (currency, self) {
            (Currency::Eur, _) => "€",
            (Currency::Brl, _) => "R$",
            (Currency::Usd, Locale::En) => "$",
            (Currency::Usd, Locale::Fr) => "$US",
            (Currency::Usd, Locale::Pl) => "USD",
            (Currency::Usd, Locale::De) => "$",
            (Currency::Usd, _) => "US$",
        }
    }
}

fn quality_per_mille(text: &str) -> u16 {
    // q is 0 to 1 with at most three decimals; anything else counts as 0 (ignored).
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().unwrap_or(0);
    match whole {
        "1" if fraction == 0 => 1000,
        "0" => fraction,
        _ => 0,
    }
}

fn grouped(units: u64, separator: &str) -> String {
    let digits = units.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * separator.len());
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(separator);
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_each_locale_writes_it() {
        let money = |locale: Locale, minor, currency| locale.money(AmountMinor(minor), currency);
        assert_eq!(money(Locale::PtBr, 1234, Currency::Brl), "R$\u{a0}12,34");
        assert_eq!(
            money(Locale::PtBr, 12_345_678, Currency::Brl),
            "R$\u{a0}123.456,78"
        );
        assert_eq!(money(Locale::Nl, 2500, Currency::Eur), "€\u{a0}25,00");
        assert_eq!(money(Locale::De, 2500, Currency::Eur), "25,00\u{a0}€");
        assert_eq!(
            money(Locale::De, 12_345_600, Currency::Eur),
            "123.456,00\u{a0}€"
        );
        assert_eq!(
            money(Locale::Fr, 12_345_600, Currency::Eur),
            "123\u{202f}456,00\u{a0}€"
        );
        assert_eq!(money(Locale::It, 99, Currency::Usd), "0,99\u{a0}US$");
        assert_eq!(
            money(Locale::Pl, 100_000, Currency::Usd),
            "1\u{a0}000,00\u{a0}USD"
        );
        assert_eq!(money(Locale::En, 100_000, Currency::Usd), "$1,000.00");
        assert_eq!(money(Locale::En, 2500, Currency::Eur), "€25.00");
        assert_eq!(money(Locale::En, 5, Currency::Brl), "R$0.05");
    }

    #[test]
    fn dates_are_written_as_each_locale_writes_them() {
        let at = |locale: Locale| locale.date_time(2026, 12, 3, 9, 5);
        assert_eq!(at(Locale::En), "2026-12-03 09:05");
        assert_eq!(at(Locale::PtBr), "03/12/2026 09:05");
        assert_eq!(at(Locale::Nl), "03-12-2026 09:05");
        assert_eq!(at(Locale::De), "03.12.2026 09:05");
        assert_eq!(at(Locale::Pl), "03.12.2026 09:05");
    }

    #[test]
    fn the_merchant_then_the_browser_then_the_country_decide() {
        let brl = Currency::Brl;
        let eur = Currency::Eur;
        assert_eq!(
            Locale::negotiate(Some("pl"), Some("de"), Some("528"), eur),
            Locale::Pl
        );
        assert_eq!(
            Locale::negotiate(Some("xx"), Some("de-AT,en;q=0.5"), None, eur),
            Locale::De
        );
        assert_eq!(
            Locale::negotiate(None, Some("ja, zh;q=0.9"), Some("380"), eur),
            Locale::It
        );
        assert_eq!(Locale::negotiate(None, None, None, brl), Locale::PtBr);
        assert_eq!(Locale::negotiate(None, None, Some("000"), eur), Locale::En);
        assert_eq!(
            Locale::from_accept_language("en;q=0.3, fr-BE;q=0.8, nl;q=0.8"),
            Some(Locale::Fr),
            "the higher weight wins; on a tie, the first listed"
        );
        assert_eq!(
            Locale::from_accept_language("pt-PT;q=0, it"),
            Some(Locale::It)
        );
        assert_eq!(Locale::from_accept_language("de;q=1.5, nl;q=abc"), None);
        assert_eq!(Locale::from_accept_language(""), None);
        assert_eq!(Locale::from_tag("PT_br"), Some(Locale::PtBr));
    }
}
