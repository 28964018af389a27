//! `yimen demo`: one whole social-assistance case, end to end, with personal data masked.

use std::process::Command;

#[test]
fn demo_runs_one_case_to_its_end_and_masks_personal_data() {
    let output = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .arg("demo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("yimen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("status: completed"), "{stdout}");
    assert!(stdout.contains("result: approved"), "{stdout}");
    for step in [
        "review",
        "street_consent",
        "department_handle",
        "publicity_period",
        "archive",
    ] {
        assert!(stdout.contains(step), "the timeline shows {step}: {stdout}");
    }
    for secret in ["150302198001011237", "13800138000", "张三", "幸福社区3号楼"] {
        assert!(!stdout.contains(secret), "{secret} is masked: {stdout}");
    }
}
