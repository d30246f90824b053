//! The command line, as an operator meets it: `--help` from clap, and a
//! misspelled flag or command refused with a hint instead of being ignored.

use std::process::Command;

fn transcoder(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_transcoder")).args(args).output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn help_lists_every_command() {
    let (code, text) = transcoder(&["--help"]);
    assert_eq!(code, 0, "{text}");
    for command in ["run", "transcode", "extras", "probe", "plan"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
    let (code, text) = transcoder(&["transcode", "--help"]);
    assert_eq!(code, 0);
    assert!(text.contains("--x264-threads-top") && text.contains("--max-rung"), "{text}");
}

#[test]
fn a_misspelled_flag_or_command_is_an_error_with_a_hint() {
    let (code, text) = transcoder(&["transcode", "in.mp4", "out", "--max-rugn", "720"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unexpected argument '--max-rugn'") && text.contains("'--max-rung'"), "{text}");
    let (code, text) = transcoder(&["trancode", "in.mp4", "out"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unrecognized subcommand 'trancode'"), "{text}");
    let (code, text) = transcoder(&["plan", "in.mp4", "--max-rung", "big"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("invalid value 'big'"), "{text}");
    let (code, text) = transcoder(&["transcode", "in.mp4", "out", "--x264-rung", "720p=keyint=30"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("keyint is fixed for every rung"), "{text}");
    let (code, text) = transcoder(&["transcode", "in.mp4", "out", "--cores", "0"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("invalid value '0'"), "{text}");
}

#[test]
fn extras_are_refused_as_the_api_refuses_them() {
    let (code, text) = transcoder(&["extras", "in.mp4", "out", "--extras", r#"{"cover": {"time_s": -2}}"#]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cover.time_s must be between 0"), "{text}");
    let (code, text) = transcoder(&["extras", "in.mp4", "out", "--extras", "cover"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--extras is not JSON"), "{text}");
}
