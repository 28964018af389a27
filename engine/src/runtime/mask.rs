//! Masking of personal data (PIPL) for views, history text, notifications and public documents.

use yimen_dsl::model::PersonalKind;

/// Masks `text` as its kind requires: `150302********1235`, `138****8000`, `张**`, `内蒙古乌海****`.
pub fn mask(kind: PersonalKind, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let keep = |head: usize, tail: usize| -> String {
        if n <= head + tail {
            return "*".repeat(n.max(1));
        }
        let mut s: String = chars[..head].iter().collect();
        s.push_str(&"*".repeat(n - head - tail));
        s.extend(&chars[n - tail..]);
        s
    };
    match kind {
        PersonalKind::IdNumber => keep(6, 4),
        PersonalKind::Phone => keep(3, 4),
        PersonalKind::Name => {
            if n <= 1 {
                "*".into()
            } else {
                keep(1, 0)
            }
        }
        PersonalKind::Address => {
            let head = n.min(6);
            let mut s: String = chars[..head].iter().collect();
            s.push_str("****");
            s
        }
        PersonalKind::Sensitive => "***".into(),
    }
}

/// Masks a JSON value: strings by kind, anything else (numbers, lists) fully.
pub fn mask_json(kind: PersonalKind, value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Null => serde_json::Value::Null,
        serde_json::Value::String(s) => serde_json::Value::String(mask(kind, s)),
        _ => serde_json::Value::String("***".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_examples() {
        assert_eq!(
            mask(PersonalKind::IdNumber, "150302199001011235"),
            "150302********1235"
        );
        assert_eq!(mask(PersonalKind::Phone, "13800138000"), "138****8000");
        assert_eq!(mask(PersonalKind::Name, "张三丰"), "张**");
        assert_eq!(
            mask(PersonalKind::Address, "内蒙古乌海市海勃湾区"),
            "内蒙古乌海市****"
        );
        assert_eq!(mask(PersonalKind::Sensitive, "糖尿病"), "***");
        assert_eq!(mask(PersonalKind::IdNumber, "123"), "***");
    }
}
