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
    #[error("the birth date in the ID number ({0}) is not a real date")]
    BirthDate(String),
    #[error("the last character should be {expected} (check digit); check for a typo")]
    CheckDigit { expected: char },
}

/// Validates an 18-character ID number: digits, a real birth date, the MOD 11-2 check character.
pub fn check_id_number(value: &str) -> Result<(), IdNumberError> {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    if !chars[..17].iter().all(char::is_ascii_digit) {
        return Err(IdNumberError::NotDigits);
    }
    let birth: String = chars[6..14].iter().collect();
    if chrono::NaiveDate::parse_from_str(&birth, "%Y%m%d").is_err() {
        return Err(IdNumberError::BirthDate(birth));
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
        assert_eq!(
            birth_date("11010519491231002X"),
            chrono::NaiveDate::from_ymd_opt(1949, 12, 31)
        );
    }
}
