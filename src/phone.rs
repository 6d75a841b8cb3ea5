//! One phone-number normalisation for everything fsb24 sends to Bitrix24 and everything it dials.
//!
//! Bitrix24 matches CRM records on the digits it stores, so `8 495 …`, `+7 495 …`, `0049 30 …` and
//! `030 …` only find the same contact when they arrive in one form. [`Numbering`] rewrites a number
//! that libphonenumber's metadata (the `phonenumber` crate) recognises as a valid number of the
//! configured default country (or of the country its `+`/international prefix names) into E.164;
//! anything else (an internal extension, a local number without area code, a short service
//! number) is left as it was.
//!
//! Normalisation never widens what reaches a dial string: its input is already a
//! [`PhoneNumber`], and its output is re-checked by [`PhoneNumber::parse`].

use std::str::FromStr;

use phonenumber::Mode;
use phonenumber::country::{Id, Source};
use phonenumber::metadata::DATABASE;

use crate::ids::PhoneNumber;

/// The normalisation rule from `[numbers]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numbering {
    /// The country a number without `+` or an international prefix belongs to; `None` rewrites
    /// only numbers that name their country themselves.
    default_country: Option<Id>,
}

/// The default country is not an ISO 3166-1 alpha-2 code libphonenumber knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a two-letter country code (ISO 3166-1 alpha-2, e.g. \"DE\")")]
pub struct UnknownCountry(pub String);

impl Numbering {
    /// Numbering with no default country (numbers are rewritten only when they start with `+`).
    pub fn international_only() -> Self {
        Self::default()
    }

    /// Numbering for `country` (`"DE"`, `"ru"`, …).
    pub fn for_country(country: &str) -> Result<Self, UnknownCountry> {
        let upper = country.trim().to_ascii_uppercase();
        let id = (upper.len() == 2)
            .then(|| Id::from_str(&upper).ok())
            .flatten()
            .ok_or_else(|| UnknownCountry(country.to_owned()))?;
        Ok(Self {
            default_country: Some(id),
        })
    }

    /// The E.164 form of `number` when it is a valid number, `number` unchanged otherwise.
    pub fn normalise(&self, number: &PhoneNumber) -> PhoneNumber {
        let raw = number.as_str();
        let Ok(parsed) = phonenumber::parse(self.default_country, raw) else {
            return number.clone();
        };
        if !phonenumber::is_valid(&parsed) || self.is_local(raw, &parsed) {
            return number.clone();
        }
        let e164 = parsed.format().mode(Mode::E164).to_string();
        // The crate's output goes through the same gate as anything else that may be dialled.
        PhoneNumber::parse(&e164).unwrap_or_else(|_| number.clone())
    }

    /// A number written without `+`, international prefix or the country's trunk prefix (`0` in
    /// Germany, `8` in Russia) has no area code: it is a local number or an extension, and
    /// guessing one would dial somebody else. Countries without a trunk prefix have no such case.
    fn is_local(&self, raw: &str, parsed: &phonenumber::PhoneNumber) -> bool {
        if parsed.code().source() != Source::Default {
            return false;
        }
        let trunk = self
            .default_country
            .and_then(|id| DATABASE.by_id(id.as_ref()))
            .and_then(|meta| meta.national_prefix());
        trunk.is_some_and(|prefix| !raw.starts_with(prefix))
    }

    /// Whether `number` can be a real subscriber number worth dialling out: a number that names
    /// its country (`+…`, or the default country applies) must be valid by libphonenumber's
    /// metadata; one whose country cannot be known must have the 6-15 digits of E.164.
    pub fn is_plausible(&self, number: &PhoneNumber) -> bool {
        let raw = number.as_str();
        match phonenumber::parse(self.default_country, raw) {
            Ok(parsed) if raw.starts_with('+') || self.default_country.is_some() => {
                phonenumber::is_valid(&parsed)
            }
            _ if raw.starts_with('+') || self.default_country.is_some() => false,
            _ => (6..=15).contains(&raw.trim_start_matches('+').len()),
        }
    }

    /// Parses `raw` with [`PhoneNumber::parse`] (the dial-string gate), then normalises it.
    pub fn parse(&self, raw: &str) -> Result<PhoneNumber, crate::ids::PhoneError> {
        PhoneNumber::parse(raw).map(|n| self.normalise(&n))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(country: &str, raw: &str) -> String {
        Numbering::for_country(country)
            .unwrap()
            .parse(raw)
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_four_formats_of_the_issue_become_one() {
        assert_eq!(norm("RU", "8 495 123-45-67"), "+74951234567");
        assert_eq!(norm("RU", "+7 (495) 123-45-67"), "+74951234567");
        assert_eq!(norm("DE", "0049 30 1234567"), "+49301234567");
        assert_eq!(norm("DE", "030 1234567"), "+49301234567");
        assert_eq!(norm("DE", "+49 30 1234567"), "+49301234567");
        // A foreign number written internationally keeps its own country.
        assert_eq!(norm("DE", "+7 495 123 45 67"), "+74951234567");
        assert_eq!(norm("RU", "810 49 30 1234567"), "+49301234567");
    }

    #[test]
    fn extensions_and_implausible_numbers_are_left_alone() {
        for raw in ["1001", "205", "5550100", "112", "0000"] {
            assert_eq!(norm("DE", raw), raw, "{raw}");
        }
        let none = Numbering::international_only();
        assert_eq!(none.parse("030 1234567").unwrap().as_str(), "0301234567");
        assert_eq!(
            none.parse("+49 30 1234567").unwrap().as_str(),
            "+49301234567"
        );
    }

    #[test]
    fn what_the_dial_gate_refuses_is_still_refused() {
        let de = Numbering::for_country("DE").unwrap();
        for bad in ["", "anonymous", "030;1", "+49 30 123{x}", "030\n1"] {
            assert!(de.parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn only_plausible_numbers_are_dialled_out() {
        let de = Numbering::for_country("DE").unwrap();
        let yes = |n: &str| de.is_plausible(&de.parse(n).unwrap());
        assert!(yes("030 1234567") && yes("+49 30 1234567") && yes("+7 495 123 45 67"));
        for bad in ["+4930", "12", "0000", "+999123456789", "110"] {
            assert!(!yes(bad), "{bad} must not be plausible");
        }
        let none = Numbering::international_only();
        let raw = |n: &str| none.is_plausible(&PhoneNumber::parse(n).unwrap());
        assert!(raw("0301234567") && raw("+49301234567"));
        assert!(!raw("205") && !raw("+4930") && !raw("1234567890123456"));
    }

    #[test]
    fn countries_are_two_letter_codes() {
        assert!(Numbering::for_country("de").is_ok());
        for bad in ["", "D", "DEU", "XX", "49"] {
            assert!(Numbering::for_country(bad).is_err(), "{bad:?}");
        }
    }
}
