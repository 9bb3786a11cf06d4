//! Console rendering (insta snapshots on a TestBackend), key handling and themes; no terminal needed.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use revenant::console::{render, Action, ConsoleExit, ConsoleState, Popup, Theme};
use revenant::engine::status::{
    BinlogStatus, CheckpointStatus, CopyStatus, CutOverStatus, Eta, TableProgress, TargetInfo, ThrottleSignal,
    IndexStatus, ThrottleStatus, VerifyStatus,
};
use revenant::engine::{Command, Phase, Status};

// ---------------------------------------------------------------- fixtures

fn target() -> TargetInfo {
    TargetInfo {
        host: "db-primary-1:3306".into(),
        database: "shop".into(),
        table: "orders".into(),
        alter: "ADD COLUMN gift_note VARCHAR(255) NULL, ADD INDEX idx_customer_created (customer_id, created_at), DROP COLUMN legacy_flag".into(),
        flavor: "mysql".into(),
        version: "8.0.36".into(),
        ghost_table: "_orders_gho".into(),
        old_table: "_orders_del".into(),
        applier_host: String::new(),
        dry_run: false,
    }
}

fn lag_history() -> Vec<f64> {
    (0..90).map(|i| 0.2 + ((i * 37) % 23) as f64 / 20.0).collect()
}

fn signals(throttling_lag: bool) -> Vec<ThrottleSignal> {
    vec![
        ThrottleSignal {
            name: "lag".into(),
            value: if throttling_lag { "2.10s".into() } else { "0.42s".into() },
            threshold: "1.50s".into(),
            throttling: throttling_lag,
        },
        ThrottleSignal { name: "Threads_running".into(), value: "12".into(), threshold: "50".into(), throttling: false },
        ThrottleSignal { name: "flag-file".into(), value: "absent".into(), threshold: "-".into(), throttling: false },
    ]
}

fn copy_in_progress() -> Status {
    Status {
        target: target(),
        phase: Some(Phase::Copy),
        phase_seconds: vec![(Phase::Preflight, 1.2), (Phase::Setup, 3.4), (Phase::Copy, 602.0)],
        elapsed_seconds: 607.0,
        elapsed_copy_seconds: 602.0,
        copy: CopyStatus {
            rows_copied: 1_234_567,
            rows_estimate: 2_730_000,
            rows_estimate_exact: false,
            rows_per_second: 2048.6,
            chunk_size: 1000,
            complete: false,
            slices: 1,
        },
        binlog: BinlogStatus {
            read_file: "mysql-bin.000123".into(),
            read_pos: 48_112,
            applied_gtid_set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123456".into(),
            applied_file: "mysql-bin.000123".into(),
            applied_pos: 45_678,
            events_applied: 98_765,
            events_per_second: 850.2,
            backlog: 12,
            backlog_capacity: 1000,
            streaming: true,
            apply_writers: 1,
        },
        throttle: ThrottleStatus { throttled: false, reason: String::new(), signals: signals(false) },
        eta: Eta::Time(840.0),
        heartbeat_lag_seconds: Some(0.4),
        lag_history: lag_history(),
        max_lag_seconds: 1.5,
        checkpoint: CheckpointStatus {
            age_seconds: Some(12.0),
            gtid_set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123401".into(),
            watermark: "(1234560)".into(),
            resumed_from: None,
        },
        cutover: CutOverStatus::default(),
        verify: Default::default(),
        indexes: Default::default(),
        tables: vec![],
        failover: Default::default(),
        paused: false,
        message: None,
        resume_command: None,
        sequence: 42,
    }
}

fn ready_postponed() -> Status {
    let mut s = copy_in_progress();
    s.phase = Some(Phase::ReadyToCutOver);
    s.phase_seconds = vec![(Phase::Preflight, 1.2), (Phase::Setup, 3.4), (Phase::Copy, 1322.0), (Phase::Catchup, 8.0), (Phase::ReadyToCutOver, 302.0)];
    s.elapsed_seconds = 1637.0;
    s.elapsed_copy_seconds = 1322.0;
    s.copy.rows_copied = 2_741_118;
    s.copy.complete = true;
    s.copy.rows_per_second = 0.0;
    s.eta = Eta::Due;
    s.binlog.backlog = 0;
    s.cutover = CutOverStatus { postponed: true, waiting_seconds: 302.0, ..Default::default() };
    s.verify = VerifyStatus {
        enabled: true,
        chunks_done: 55,
        chunks_total: 55,
        rows_verified: 2_741_118,
        last_lock_ms: Some(4),
        last_ended_unix: Some(1_796_276_730),
        last_result: Some("identical: 2741118 rows in 55 chunks".into()),
        ..Default::default()
    };
    s
}

fn verifying() -> Status {
    let mut s = ready_postponed();
    s.phase = Some(Phase::Verify);
    s.phase_seconds = vec![(Phase::Preflight, 1.2), (Phase::Setup, 3.4), (Phase::Copy, 1322.0), (Phase::Catchup, 8.0), (Phase::Verify, 41.0)];
    s.cutover = CutOverStatus::default();
    s.verify = VerifyStatus { enabled: true, running: true, round: 1, chunks_done: 22, chunks_total: 55, rows_verified: 1_100_000, last_lock_ms: Some(4), ..Default::default() };
    s
}

fn adding_indexes() -> Status {
    let mut s = ready_postponed();
    s.phase = Some(Phase::Indexes);
    s.phase_seconds = vec![(Phase::Preflight, 1.2), (Phase::Setup, 3.4), (Phase::Copy, 1322.0), (Phase::Indexes, 74.0)];
    s.cutover = CutOverStatus::default();
    s.verify = VerifyStatus::default();
    s.indexes = IndexStatus { deferred: vec!["idx_customer".into(), "idx_created_at".into()], building: true, build_seconds: Some(74.0) };
    s
}

fn move_tables_drain() -> Status {
    let mut s = copy_in_progress();
    s.target.table = "orders".into();
    s.target.alter = "move to db-new-1:3306".into();
    s.target.applier_host = "db-new-1:3306".into();
    s.phase = Some(Phase::CutOver);
    s.phase_seconds = vec![
        (Phase::Preflight, 2.0),
        (Phase::Setup, 5.0),
        (Phase::Copy, 3605.0),
        (Phase::Catchup, 20.0),
        (Phase::ReadyToCutOver, 61.0),
        (Phase::CutOver, 4.0),
    ];
    s.copy.complete = true;
    s.copy.rows_copied = 4_100_000;
    s.copy.rows_estimate = 4_100_000;
    s.eta = Eta::Due;
    s.tables = vec![
        TableProgress { table: "orders".into(), rows_copied: 2_730_000, rows_estimate: 2_730_000, complete: true },
        TableProgress { table: "order_items".into(), rows_copied: 1_200_000, rows_estimate: 1_200_000, complete: true },
        TableProgress { table: "customers".into(), rows_copied: 150_000, rows_estimate: 150_000, complete: true },
        TableProgress { table: "gift_cards".into(), rows_copied: 20_000, rows_estimate: 20_000, complete: true },
    ];
    s.cutover = CutOverStatus {
        postponed: false,
        waiting_seconds: 61.0,
        blocked_reason: None,
        step: "drain".into(),
        attempts: 1,
        last_stall_ms: Some(140),
        drain_gtid: Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-130002".into()),
        events_left_to_drain: Some(1_234),
    };
    s
}

fn done() -> Status {
    let mut s = ready_postponed();
    s.phase = Some(Phase::Done);
    s.phase_seconds.push((Phase::CutOver, 2.0));
    s.phase_seconds.push((Phase::Cleanup, 1.0));
    s.phase_seconds.push((Phase::Done, 0.0));
    s.elapsed_seconds = 1650.0;
    s.cutover = CutOverStatus { attempts: 1, last_stall_ms: Some(85), step: "rename".into(), ..Default::default() };
    s.message = Some("`shop`.`orders` swapped; the old table is kept as `_orders_del`.".into());
    s.binlog.streaming = false;
    s
}

fn failed() -> Status {
    let mut s = copy_in_progress();
    s.phase = Some(Phase::Failed);
    s.binlog.streaming = false;
    s.message = Some(
        "binlog stream lost: the server purged mysql-bin.000122 while revenant was disconnected. The checkpoint at \
         3e11fa47-71ca-11e1-9e33-c80aa9429562:1-123401 cannot be resumed; start the migration again."
            .into(),
    );
    s.resume_command = Some("revenant migrate --database shop --table orders --resume".into());
    s
}

fn throttled() -> Status {
    let mut s = copy_in_progress();
    s.throttle = ThrottleStatus { throttled: true, reason: "lag=2.1s > 1.5s".into(), signals: signals(true) };
    s.eta = Eta::Measuring;
    s
}

// ---------------------------------------------------------------- helpers

fn state() -> ConsoleState {
    let mut st = ConsoleState::new("orders", false, 2.0);
    st.log_timestamps = false;
    st
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(st: &mut ConsoleState, status: &Status, text: &str) -> Vec<Action> {
    text.chars().filter_map(|c| st.handle_key(key(c), status)).collect()
}

fn draw_buffer(st: &ConsoleState, status: &Status, theme: &Theme, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    terminal.draw(|f| render(f, f.area(), st, status, theme)).expect("draw");
    terminal.backend().buffer().clone()
}

fn draw(st: &ConsoleState, status: &Status, w: u16, h: u16) -> String {
    let buf = draw_buffer(st, status, &Theme::default(), w, h);
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..w {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            skip = unicode_cols(sym).saturating_sub(1);
            line.push_str(sym);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn unicode_cols(s: &str) -> usize {
    // Every symbol the console draws is one column wide.
    usize::from(!s.is_empty())
}

fn snap_both(name: &str, st: &ConsoleState, status: &Status) {
    insta::assert_snapshot!(format!("{name}_80x24"), draw(st, status, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), draw(st, status, 120, 40));
}

// ---------------------------------------------------------------- snapshots

#[test]
fn snapshot_copy_in_progress() {
    snap_both("copy_in_progress", &state(), &copy_in_progress());
}

/// A parallel copy shows its workers beside the chunk size, a parallel apply its writers beside the backlog.
#[test]
fn snapshot_parallel_copy() {
    let mut s = copy_in_progress();
    s.copy.slices = 3;
    s.binlog.apply_writers = 2;
    let screen = draw(&state(), &s, 120, 40);
    assert!(screen.contains("workers 3"), "{screen}");
    assert!(screen.contains("writers 2"), "{screen}");
    insta::assert_snapshot!("parallel_copy_120x40", screen);
}

#[test]
fn snapshot_ready_postponed() {
    snap_both("ready_postponed", &state(), &ready_postponed());
}

#[test]
fn snapshot_adding_indexes() {
    snap_both("adding_indexes", &state(), &adding_indexes());
}

#[test]
fn snapshot_verifying() {
    snap_both("verifying", &state(), &verifying());
}

#[test]
fn verify_key_sends_verify_only_when_ready() {
    for s in [copy_in_progress(), verifying()] {
        assert_eq!(state().handle_key(key('v'), &s), None, "v must do nothing in {:?}", s.phase);
    }
    assert_eq!(state().handle_key(key('v'), &ready_postponed()), Some(Action::Send(Command::Verify)));
}

#[test]
fn snapshot_cutover_confirmation_partially_typed() {
    let s = ready_postponed();
    let mut st = state();
    assert_eq!(st.handle_key(key('C'), &s), None);
    typed(&mut st, &s, "ord");
    snap_both("cutover_confirm", &st, &s);
}

#[test]
fn snapshot_quit_popup() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key('q'), &s);
    snap_both("quit_popup", &st, &s);
}

#[test]
fn snapshot_help_overlay() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key('?'), &s);
    snap_both("help", &st, &s);
}

#[test]
fn snapshot_abort_confirmation() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key('X'), &s);
    typed(&mut st, &s, "or");
    snap_both("abort_confirm", &st, &s);
}

#[test]
fn snapshot_too_small() {
    insta::assert_snapshot!("too_small_59x15", draw(&state(), &copy_in_progress(), 59, 15));
    insta::assert_snapshot!("too_small_100x15", draw(&state(), &copy_in_progress(), 100, 15));
}

#[test]
fn snapshot_move_tables_drain() {
    snap_both("move_tables_drain", &state(), &move_tables_drain());
}

#[test]
fn snapshot_done() {
    snap_both("done", &state(), &done());
}

#[test]
fn snapshot_failed_with_message() {
    snap_both("failed", &state(), &failed());
}

#[test]
fn snapshot_read_only_attach_throttled() {
    let mut st = ConsoleState::new("orders", true, 1.0);
    st.log_timestamps = false;
    snap_both("read_only_throttled", &st, &throttled());
}

#[test]
fn snapshot_frozen_with_notice_and_prompt() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key('f'), &s);
    st.on_reply(&Command::Checkpoint, &revenant::engine::CommandReply::ok("written at 3e11fa47:1-123456"));
    st.handle_key(key(':'), &s);
    typed(&mut st, &s, "chunk-size=5");
    insta::assert_snapshot!("frozen_prompt_80x24", draw(&st, &s, 80, 24));
}

// ---------------------------------------------------------------- keys

#[test]
fn cut_over_key_only_opens_when_ready() {
    for phase in [Phase::Preflight, Phase::Setup, Phase::Copy, Phase::Catchup, Phase::CutOver, Phase::Done, Phase::Failed] {
        let mut s = copy_in_progress();
        s.phase = Some(phase);
        let mut st = state();
        assert_eq!(st.handle_key(key('C'), &s), None);
        assert_eq!(st.popup, Popup::None, "C must not open in {phase:?}");
    }
    let mut st = state();
    assert_eq!(st.handle_key(key('C'), &ready_postponed()), None);
    assert!(matches!(st.popup, Popup::Confirm { .. }));
}

#[test]
fn wrong_name_then_enter_cancels_and_sends_nothing() {
    let s = ready_postponed();
    let mut st = state();
    st.handle_key(key('C'), &s);
    assert!(typed(&mut st, &s, "order").is_empty());
    assert_eq!(st.handle_key(code(KeyCode::Enter), &s), None);
    assert_eq!(st.popup, Popup::None);
    assert!(st.notice.as_ref().is_some_and(|n| !n.ok && n.text.contains("nothing was sent")));
}

#[test]
fn right_name_sends_cut_over() {
    let s = ready_postponed();
    let mut st = state();
    st.handle_key(key('C'), &s);
    assert!(typed(&mut st, &s, "orderz").is_empty());
    st.handle_key(code(KeyCode::Backspace), &s);
    typed(&mut st, &s, "s");
    assert_eq!(st.handle_key(code(KeyCode::Enter), &s), Some(Action::Send(Command::CutOver)));
    assert_eq!(st.popup, Popup::None);
}

#[test]
fn esc_cancels_confirmations_and_popups() {
    let s = ready_postponed();
    let mut st = state();
    st.handle_key(key('C'), &s);
    typed(&mut st, &s, "orders");
    assert_eq!(st.handle_key(code(KeyCode::Esc), &s), None);
    assert_eq!(st.popup, Popup::None);
    // Enter after the cancel does nothing.
    assert_eq!(st.handle_key(code(KeyCode::Enter), &s), None);

    st.handle_key(key('X'), &s);
    typed(&mut st, &s, "orders");
    assert_eq!(st.handle_key(code(KeyCode::Esc), &s), None);
    assert_eq!(st.popup, Popup::None);

    st.handle_key(key('?'), &s);
    assert_eq!(st.popup, Popup::Help);
    st.handle_key(code(KeyCode::Esc), &s);
    assert_eq!(st.popup, Popup::None);

    st.handle_key(key('q'), &s);
    assert_eq!(st.handle_key(code(KeyCode::Esc), &s), None);
    assert_eq!(st.popup, Popup::None);
}

#[test]
fn abort_is_confirmed_by_name() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key('X'), &s);
    typed(&mut st, &s, "orders");
    assert_eq!(st.handle_key(code(KeyCode::Enter), &s), Some(Action::Send(Command::Abort)));
}

#[test]
fn q_then_d_detaches_and_q_then_s_stops() {
    let s = copy_in_progress();
    let mut st = state();
    assert_eq!(st.handle_key(key('q'), &s), None);
    assert_eq!(st.popup, Popup::Quit);
    assert_eq!(st.handle_key(key('d'), &s), Some(Action::Quit(ConsoleExit::Detached)));

    let mut st = state();
    st.handle_key(key('q'), &s);
    assert_eq!(st.handle_key(key('s'), &s), Some(Action::SendThenQuit(Command::Stop, ConsoleExit::Stopped)));

    // Once the migration ended, q quits at once.
    let mut st = state();
    assert_eq!(st.handle_key(key('q'), &done()), Some(Action::Quit(ConsoleExit::Finished(Phase::Done))));
}

#[test]
fn read_only_blocks_command_keys() {
    let s = ready_postponed();
    let mut st = ConsoleState::new("orders", true, 1.0);
    for c in ['t', 'p', 'c', 'C', 'X', ':'] {
        assert_eq!(st.handle_key(key(c), &s), None, "{c}");
        assert_eq!(st.popup, Popup::None, "{c}");
    }
    assert!(st.notice.as_ref().is_some_and(|n| n.text.contains("read-only")));
    // Stop is refused in the quit popup; detach works.
    st.handle_key(key('q'), &s);
    assert_eq!(st.handle_key(key('s'), &s), None);
    assert_eq!(st.handle_key(key('d'), &s), Some(Action::Quit(ConsoleExit::Detached)));
}

#[test]
fn throttle_toggles_and_commands_map() {
    let s = copy_in_progress();
    let mut st = state();
    assert_eq!(st.handle_key(key('t'), &s), Some(Action::Send(Command::Throttle)));
    st.on_reply(&Command::Throttle, &revenant::engine::CommandReply::ok("throttled"));
    assert_eq!(st.handle_key(key('t'), &s), Some(Action::Send(Command::NoThrottle)));
    let mut by_user = copy_in_progress();
    by_user.throttle.throttled = true;
    by_user.throttle.reason = "commanded by user".into();
    assert_eq!(state().handle_key(key('t'), &by_user), Some(Action::Send(Command::NoThrottle)));
    assert_eq!(st.handle_key(key('p'), &s), Some(Action::Send(Command::Pause)));
    assert_eq!(st.handle_key(key('r'), &s), None, "resume only while paused");
    let mut paused = s.clone();
    paused.paused = true;
    assert_eq!(st.handle_key(key('r'), &paused), Some(Action::Send(Command::Resume)));
    assert_eq!(st.handle_key(key('c'), &s), Some(Action::Send(Command::Checkpoint)));
    st.on_reply(&Command::Checkpoint, &revenant::engine::CommandReply::ok("written at 3e11fa47:1-123456"));
    assert!(st.notice.as_ref().is_some_and(|n| n.ok && n.text.contains("3e11fa47:1-123456")));
}

#[test]
fn prompt_uses_the_socket_parser() {
    let s = copy_in_progress();
    let mut st = state();
    st.handle_key(key(':'), &s);
    typed(&mut st, &s, "max-lag-millis=2000");
    assert_eq!(
        st.handle_key(code(KeyCode::Enter), &s),
        Some(Action::Send(Command::Set { name: "max-lag-millis".into(), value: "2000".into() }))
    );
    st.handle_key(key(':'), &s);
    typed(&mut st, &s, "chunk-size=-1");
    assert_eq!(st.handle_key(code(KeyCode::Enter), &s), None);
    assert!(st.notice.as_ref().is_some_and(|n| !n.ok && n.text.contains("chunk-size")));
}

#[test]
fn filter_freeze_rate_focus_and_log() {
    let s = move_tables_drain();
    let mut st = state();
    st.handle_key(key('/'), &s);
    typed(&mut st, &s, "drain");
    st.handle_key(code(KeyCode::Enter), &s);
    assert_eq!(st.filter, "drain");
    st.handle_key(key('/'), &s);
    st.handle_key(code(KeyCode::Esc), &s);
    assert_eq!(st.filter, "");

    st.handle_key(key('f'), &s);
    assert!(st.frozen);
    st.handle_key(key('f'), &s);
    assert!(!st.frozen);

    assert_eq!(st.refresh_hz, 2.0);
    st.handle_key(key('+'), &s);
    st.handle_key(key('+'), &s);
    assert_eq!(st.refresh_hz, 4.0);
    for _ in 0..5 {
        st.handle_key(key('-'), &s);
    }
    assert_eq!(st.refresh_hz, 0.5);

    let order: Vec<_> = (0..5)
        .map(|_| {
            st.handle_key(code(KeyCode::Tab), &s);
            st.focus
        })
        .collect();
    use revenant::console::Focus::*;
    assert_eq!(order, vec![Tables, Lag, Binlog, Log, Copy]);
    st.handle_key(key('L'), &s);
    assert!(st.log_maximised);
    let screen = draw(&st, &s, 80, 24);
    assert!(!screen.contains("Copy"), "log maximised hides the other panes");
}

// ---------------------------------------------------------------- themes

#[test]
fn mono_theme_renders_without_colour() {
    let theme = Theme::builtin("mono").expect("mono");
    let mut st = state();
    for (status, keys) in [(copy_in_progress(), ""), (throttled(), "?"), (ready_postponed(), "Cor"), (failed(), ""), (move_tables_drain(), "q")] {
        st.popup = Popup::None;
        for c in keys.chars() {
            st.handle_key(key(c), &status);
        }
        for (w, h) in [(80, 24), (120, 40)] {
            let buf = draw_buffer(&st, &status, &theme, w, h);
            for cell in buf.content() {
                assert_eq!(cell.fg, Color::Reset, "fg of {:?}", cell.symbol());
                assert_eq!(cell.bg, Color::Reset, "bg of {:?}", cell.symbol());
            }
        }
    }
}

#[test]
fn shipped_themes_load() {
    for name in ["default", "dark", "light", "mono"] {
        let t = Theme::builtin(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(t.name, name);
        assert!(Theme::load(&format!("{}/themes/{name}.toml", env!("CARGO_MANIFEST_DIR"))).is_ok(), "{name} by path");
    }
    // default uses only the 16 ANSI colours.
    let d = Theme::builtin("default").expect("default");
    let src = std::fs::read_to_string(format!("{}/themes/default.toml", env!("CARGO_MANIFEST_DIR"))).expect("read");
    assert!(!src.contains('#') || src.lines().all(|l| l.trim_start().starts_with('#') || !l.contains('#')), "no #rrggbb");
    assert_ne!(d.title, Theme::unstyled().title);
    // mono has no colours at all.
    let m = Theme::builtin("mono").expect("mono");
    assert!(!std::fs::read_to_string(format!("{}/themes/mono.toml", env!("CARGO_MANIFEST_DIR"))).expect("read").contains("fg"));
    assert_eq!(m.badge_phase.fg, None);
}

#[test]
fn partial_theme_overrides_the_default() {
    let t = Theme::from_toml("title = { fg = \"#ff8800\", modifiers = [\"underlined\"] }\nerror = { bg = \"lightred\" }\n").expect("partial");
    let d = Theme::default();
    assert_eq!(t.title.fg, Some(Color::Rgb(0xff, 0x88, 0x00)));
    assert!(t.title.add_modifier.contains(ratatui::style::Modifier::UNDERLINED));
    assert_eq!(t.error.bg, Some(Color::LightRed));
    assert_eq!(t.error.fg, d.error.fg, "unset fields keep the default");
    assert_eq!(t.border, d.border);
    assert_eq!(t.key, d.key);
}

#[test]
fn unknown_theme_keys_are_errors_naming_the_key() {
    let e = format!("{:?}", Theme::from_toml("titel = { fg = \"red\" }").expect_err("unknown slot"));
    assert!(e.contains("titel"), "{e}");
    let e = format!("{:?}", Theme::from_toml("title = { colour = \"red\" }").expect_err("unknown field"));
    assert!(e.contains("colour"), "{e}");
    let e = format!("{:?}", Theme::from_toml("title = { fg = \"reddish\" }").expect_err("bad colour"));
    assert!(e.contains("reddish") && e.contains("title"), "{e}");
    let e = format!("{:?}", Theme::from_toml("title = { modifiers = [\"blink\"] }").expect_err("bad modifier"));
    assert!(e.contains("blink"), "{e}");
    assert!(Theme::load("no-such-theme").is_err());
}

#[test]
fn no_color_selects_mono() {
    // SAFETY (edition 2021): only this test touches NO_COLOR.
    std::env::set_var("NO_COLOR", "1");
    let t = Theme::select(Some("dark")).expect("select");
    std::env::remove_var("NO_COLOR");
    assert_eq!(t.name, "mono");
    assert_eq!(Theme::select(Some("dark")).expect("dark").name, "dark");
}
