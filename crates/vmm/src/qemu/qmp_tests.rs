//! The QMP client against a scripted fake server on a Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;

use super::*;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}"#;
const OK: &str = r#"{"return": {}}"#;

enum Step {
    /// Send this line (a newline is added).
    Send(&'static str),
    /// Read one line; it must be this command, without arguments.
    Expect(&'static str),
    /// Read one line; it must be exactly this message.
    ExpectMessage(Value),
    /// Send raw bytes as they are.
    Raw(Vec<u8>),
    /// Hang up.
    Close,
    /// Do nothing for a while.
    Stall(Duration),
}

struct Fake {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: JoinHandle<()>,
}

impl Fake {
    fn start(script: Vec<Step>) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            for step in script {
                match step {
                    Step::Send(line) => {
                        let _ = writer.write_all(format!("{line}\n").as_bytes());
                    }
                    Step::Raw(bytes) => {
                        let _ = writer.write_all(&bytes);
                    }
                    Step::Expect(command) => {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let got: Value = serde_json::from_str(&line).unwrap();
                        assert_eq!(got, serde_json::json!({ "execute": command }));
                    }
                    Step::ExpectMessage(expected) => {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let got: Value = serde_json::from_str(&line).unwrap();
                        assert_eq!(got, expected);
                    }
                    Step::Close => return,
                    Step::Stall(d) => std::thread::sleep(d),
                }
            }
            // Keep the connection open until the client hangs up.
            let mut rest = String::new();
            let _ = reader.read_line(&mut rest);
        });
        Fake {
            _dir: dir,
            path,
            server,
        }
    }

    /// Joins the server, so its assertions fail the test.
    fn finish(self) {
        self.server
            .join()
            .expect("fake QMP server assertion failed");
    }
}

fn negotiated(mut rest: Vec<Step>) -> Vec<Step> {
    let mut script = vec![
        Step::Send(GREETING),
        Step::Expect("qmp_capabilities"),
        Step::Send(OK),
    ];
    script.append(&mut rest);
    script
}

const T: Duration = Duration::from_secs(5);

#[test]
fn parses_every_kind_of_message() {
    assert_eq!(
        parse_message(GREETING.as_bytes()).unwrap(),
        Message::Greeting
    );
    assert_eq!(
        parse_message(br#"{"return": {"status": "running"}}"#).unwrap(),
        Message::Return(serde_json::json!({"status": "running"}))
    );
    assert_eq!(
        parse_message(br#"{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}"#)
            .unwrap(),
        Message::Error {
            class: "CommandNotFound".into(),
            desc: "The command x has not been found".into()
        }
    );
    assert_eq!(
        parse_message(br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}"#)
            .unwrap(),
        Message::Event("POWERDOWN".into())
    );
    assert!(
        parse_message(b"[1,2]")
            .unwrap_err()
            .contains("not a JSON object")
    );
    assert!(
        parse_message(b"{\"what\": 1}")
            .unwrap_err()
            .contains("neither")
    );
    assert!(parse_message(b"{oops").unwrap_err().contains("not JSON"));
}

#[test]
fn negotiates_then_queries_status_skipping_events() {
    let fake = Fake::start(negotiated(vec![
        Step::Expect("query-status"),
        Step::Send(r#"{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "RESUME"}"#),
        Step::Send(r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#),
    ]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    let status = client.query_status().unwrap();
    assert_eq!(
        status,
        RunStatus {
            status: "running".into(),
            running: true
        }
    );
    drop(client);
    fake.finish();
}

#[test]
fn command_errors_carry_class_and_description() {
    let fake = Fake::start(negotiated(vec![
        Step::Expect("system_powerdown"),
        Step::Send(r#"{"error": {"class": "GenericError", "desc": "no power button"}}"#),
    ]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    let err = client.system_powerdown().unwrap_err();
    assert!(
        matches!(&err, QmpError::Command { command, class, desc }
            if command == "system_powerdown" && class == "GenericError" && desc == "no power button"),
        "{err:?}"
    );
    let vmm: VmmError = err.into();
    assert!(
        matches!(&vmm, VmmError::Refused { what, detail } if what == "system_powerdown" && detail.contains("no power button")),
        "{vmm:?}"
    );
    drop(client);
    fake.finish();
}

#[test]
fn refused_capabilities_fail_the_connection() {
    let fake = Fake::start(vec![
        Step::Send(GREETING),
        Step::Expect("qmp_capabilities"),
        Step::Send(r#"{"error": {"class": "CommandNotFound", "desc": "nope"}}"#),
    ]);
    let err = QmpClient::connect(&fake.path, T).unwrap_err();
    assert!(
        matches!(&err, QmpError::Command { command, .. } if command == "qmp_capabilities"),
        "{err:?}"
    );
    fake.finish();
}

#[test]
fn a_missing_greeting_is_a_protocol_error() {
    let fake = Fake::start(vec![Step::Send(OK)]);
    let err = QmpClient::connect(&fake.path, T).unwrap_err();
    assert!(
        matches!(&err, QmpError::Protocol { detail, .. } if detail.contains("greeting")),
        "{err:?}"
    );
    fake.finish();
}

#[test]
fn quit_tolerates_the_connection_closing_before_the_reply() {
    let fake = Fake::start(negotiated(vec![Step::Expect("quit"), Step::Close]));
    let client = QmpClient::connect(&fake.path, T).unwrap();
    client.quit().unwrap();
    fake.finish();
}

#[test]
fn other_commands_report_the_closed_connection() {
    let fake = Fake::start(negotiated(vec![Step::Expect("query-status"), Step::Close]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    let err = client.query_status().unwrap_err();
    assert!(matches!(err, QmpError::Closed { .. }), "{err:?}");
    fake.finish();
}

#[test]
fn a_silent_server_times_out() {
    let fake = Fake::start(vec![Step::Stall(Duration::from_secs(2))]);
    let started = Instant::now();
    let err = QmpClient::connect(&fake.path, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    fake.finish();
}

#[test]
fn overlong_and_malformed_replies_are_refused() {
    let mut huge = b"{\"return\": \"".to_vec();
    huge.resize(huge.len() + (MAX_MESSAGE as usize) + 10, b'x');
    let fake = Fake::start(negotiated(vec![
        Step::Expect("query-status"),
        Step::Raw(huge),
    ]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    let err = client.query_status().unwrap_err();
    assert!(
        matches!(&err, QmpError::Protocol { detail, .. } if detail.contains("longer than")),
        "{err:?}"
    );
    drop(client);
    fake.finish();

    let fake = Fake::start(negotiated(vec![
        Step::Expect("query-status"),
        Step::Send(r#"{"return": {"status": 7}}"#),
    ]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    let err = client.query_status().unwrap_err();
    assert!(
        matches!(&err, QmpError::Protocol { detail, .. } if detail.contains("query-status returned")),
        "{err:?}"
    );
    drop(client);
    fake.finish();
}

#[test]
fn connecting_to_nothing_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = QmpClient::connect(&dir.path().join("absent.sock"), T).unwrap_err();
    assert!(matches!(err, QmpError::Connect { .. }), "{err:?}");
    let vmm: VmmError = err.into();
    assert!(matches!(vmm, VmmError::Io { .. }), "{vmm:?}");
}

#[test]
fn ctrl_alt_del_is_sent_as_three_qcodes() {
    let fake = Fake::start(negotiated(vec![
        Step::ExpectMessage(serde_json::json!({
            "execute": "send-key",
            "arguments": {"keys": [
                {"type": "qcode", "data": "ctrl"},
                {"type": "qcode", "data": "alt"},
                {"type": "qcode", "data": "delete"},
            ]},
        })),
        Step::Send(OK),
    ]));
    let mut client = QmpClient::connect(&fake.path, T).unwrap();
    client.send_ctrl_alt_del().unwrap();
    drop(client);
    fake.finish();
}
