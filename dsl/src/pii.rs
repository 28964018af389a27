//! Personal data (PIPL): masking for logs, API answers and public lists, and the checks that
//! tell a real ID number or phone from a typo. Masking works on characters, never bytes, so
//! Chinese names and addresses are cut cleanly.

use crate::model::PersonalKind;

/// Masks `value` as its kind requires: `150302********1235`, `138****8000`, `张**`.
pub fn mask(kind: PersonalKind, value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    match kind {
        PersonalKind::IdNumber => keep_ends(&chars, 6, 4),
        PersonalKind::Phone => {
            let digits: Vec<char> = chars.iter().copied().filter(char::is_ascii_digit).collect();
            if is_mobile(&digits) {
                keep_ends(&digits, 3, 4)
            } else {
                // Landline: the area code may show, the subscriber number may not.
                keep_ends(&digits, 4, 2)
            }
        }
        PersonalKind::Name => chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 0 || *c == '·' { *c } else { '*' })
            .collect(),
        PersonalKind::Address => {
            let shown = chars.len().min(6).min(chars.len() / 2);
            let mut out: String = chars[..shown].iter().collect();
            out.push_str("****");
            out
        }
        PersonalKind::Sensitive => "******".to_string(),
    }
}

/// Keeps `head` leading and `tail` trailing characters; stars in between. Values too short to
/// hide anything are starred whole.
fn keep_ends(chars: &[char], head: usize, tail: usize) -> String {
    if chars.len() <= head + tail {
        return "*".repeat(chars.len().max(4));
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

fn is_mobile(digits: &[char]) -> bool {
    digits.len() == 11 && digits[0] == '1' && ('3'..='9').contains(&digits[1])
}

/// Why a value is not a valid resident ID number (GB 11643).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("an ID number has 18 characters; this one has {0}")]
    Length(usize),
    #[error("the first 17 characters of an ID number are digits")]
    NotDigits,
    #[error("the region code {0} (the first six digits) is not a county-level division of China")]
    Region(String),
    #[error("the birth date in the ID number ({0}) is not a real date")]
    BirthDate(String),
    #[error("the last character should be {expected} (check digit); check for a typo")]
    CheckDigit { expected: char },
}

/// First two digits of a region code (GB/T 2260): the provinces, autonomous regions and
/// municipalities, 71 Taiwan, 81 Hong Kong and 82 Macao (residence permits), 83 Taiwan
/// residents' permits, 91 foreigners' permanent residence cards (2023 format).
const PROVINCES: [&str; 36] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82", "83", "91",
];

/// Validates an 18-character ID number (GB 11643): 17 digits, a region code under a known
/// province that names more than the province, a real birth date (1900 or later), the MOD 11-2
/// check character. Whether the birth date has passed is the caller's to check
/// (see [`birth_date`]).
pub fn check_id_number(value: &str) -> Result<(), IdNumberError> {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    if !chars[..17].iter().all(char::is_ascii_digit) {
        return Err(IdNumberError::NotDigits);
    }
    let region: String = chars[..6].iter().collect();
    if !PROVINCES.contains(&&region[..2]) || region.ends_with("0000") {
        return Err(IdNumberError::Region(region));
    }
    let birth: String = chars[6..14].iter().collect();
    match chrono::NaiveDate::parse_from_str(&birth, "%Y%m%d") {
        Ok(date) if chrono::Datelike::year(&date) >= 1900 => {}
        _ => return Err(IdNumberError::BirthDate(birth)),
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = chars[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if chars[17].to_ascii_uppercase() != expected {
        return Err(IdNumberError::CheckDigit { expected });
    }
    Ok(())
}

/// Why a value is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error(
        "give a mobile number (11 digits, 13x to 19x: 13800138000) or a landline with its area \
         code (0473-3123456, 010-62345678); spaces and hyphens may separate the parts"
    )]
    Shape,
}

/// Validates a phone number: a mainland mobile (11 digits from 13 to 19, optionally after +86)
/// or a landline with its area code: `010` or `02x` and 8 digits, else a four-digit area code
/// and 7 or 8 digits, the local number not starting with 0 or 1. Spaces, hyphens and
/// parentheses around the area code are allowed.
pub fn check_phone(value: &str) -> Result<(), PhoneError> {
    let mut text = value.trim();
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || " -()+".contains(c))
    {
        return Err(PhoneError::Shape);
    }
    for prefix in ["+86", "0086"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest;
        }
    }
    if text.contains('+') {
        return Err(PhoneError::Shape);
    }
    let digits: Vec<char> = text.chars().filter(char::is_ascii_digit).collect();
    if is_mobile(&digits) {
        return Ok(());
    }
    if digits.first() != Some(&'0') {
        return Err(PhoneError::Shape);
    }
    let area = if matches!(digits.get(1), Some('1' | '2')) {
        3
    } else {
        4
    };
    let local = digits.len().saturating_sub(area);
    let valid_local = if area == 3 {
        local == 8
    } else {
        (7..=8).contains(&local)
    };
    if valid_local && !matches!(digits.get(area), Some('0' | '1')) {
        Ok(())
    } else {
        Err(PhoneError::Shape)
    }
}

/// Birth date from a valid ID number (to leave minors out of public lists).
pub fn birth_date(id_number: &str) -> Option<chrono::NaiveDate> {
    check_id_number(id_number).ok()?;
    let birth: String = id_number.trim().chars().skip(6).take(8).collect();
    chrono::NaiveDate::parse_from_str(&birth, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_the_domain_requires() {
        assert_eq!(
            mask(PersonalKind::IdNumber, "150302198001011235"),
            "150302********1235"
        );
        assert_eq!(mask(PersonalKind::Phone, "13800138000"), "138****8000");
        assert_eq!(mask(PersonalKind::Phone, "138 0013 8000"), "138****8000");
        assert_eq!(mask(PersonalKind::Phone, "0473-3123456"), "0473*****56");
        assert_eq!(mask(PersonalKind::Name, "张三丰"), "张**");
        assert_eq!(mask(PersonalKind::Name, "阿拉坦·巴根"), "阿**·**");
        assert_eq!(mask(PersonalKind::Sensitive, "患有慢性病"), "******");
        let addr = mask(
            PersonalKind::Address,
            "内蒙古乌海市海勃湾区滨河街道某小区3栋2单元",
        );
        assert_eq!(addr, "内蒙古乌海市****");
        assert!(!addr.contains("3栋"));
    }

    #[test]
    fn short_values_never_leak() {
        assert_eq!(mask(PersonalKind::IdNumber, "1503"), "****");
        assert_eq!(mask(PersonalKind::Phone, "12345"), "*****");
        assert_eq!(mask(PersonalKind::Address, "北京"), "北****");
        assert_eq!(mask(PersonalKind::Name, ""), "");
    }

    #[test]
    fn phones_are_mobiles_or_landlines_with_an_area_code() {
        for ok in [
            "13800138000",
            "138 0013 8000",
            "+86 138-0013-8000",
            "0473-3123456",
            "(0473) 31234567",
            "010-62345678",
            "02087654321",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "12345",
            "12800138000",
            "3123456",
            "0473-0000000",
            "010-6234567",
            "0473-312345",
            "138001380001",
            "phone",
            "+1 2025550123",
        ] {
            assert_eq!(check_phone(bad), Err(PhoneError::Shape), "{bad}");
        }
    }

    #[test]
    fn id_number_check_digit() {
        // 11010519491231002X is the standard's own example.
        assert_eq!(check_id_number("11010519491231002X"), Ok(()));
        assert_eq!(check_id_number("11010519491231002x"), Ok(()));
        assert_eq!(
            check_id_number("110105194912310021"),
            Err(IdNumberError::CheckDigit { expected: 'X' })
        );
        assert_eq!(
            check_id_number("110105194902310021"),
            Err(IdNumberError::BirthDate("19490231".into()))
        );
        assert_eq!(check_id_number("1101"), Err(IdNumberError::Length(4)));
        assert_eq!(check_id_number("12345"), Err(IdNumberError::Length(5)));
        // 99 is no province; 110000 is a province, not a county.
        assert_eq!(
            check_id_number("990105194912310021"),
            Err(IdNumberError::Region("990105".into()))
        );
        assert_eq!(
            check_id_number("110000194912310021"),
            Err(IdNumberError::Region("110000".into()))
        );
        assert_eq!(
            check_id_number("150302180001011231"),
            Err(IdNumberError::BirthDate("18000101".into()))
        );
        assert_eq!(check_id_number("150302199001011231"), Ok(()));
        assert_eq!(
            birth_date("11010519491231002X"),
            chrono::NaiveDate::from_ymd_opt(1949, 12, 31)
        );
    }
}
