//! Layered timeout management (`ticktock::layers` and the RTO estimator behind it), tested
//! from the outside.
//!
//! Everything except the last section is sans-IO: a base `Instant` plus `Duration`s, no
//! sleeping, no service.
//!
//! 1. **RFC 6298 through the [`RetransmissionManager`]**: hand-worked SRTT / RTTVAR / RTO
//!    values (α = 1/8, β = 1/4, K = 4, G = 1 ms) as they come out of real acks, the timer
//!    starting on the first send, restarting at ack time + RTO while frames remain in flight
//!    and stopping when none do; exponential backoff on expiry (capped at the maximum) and its
//!    end on the next valid sample; Karn's rule; the min and max clamps.
//! 2. **Acks**: cumulative plus selective ([`AckFrame`] bit `i` = `next_expected + 1 + i`),
//!    duplicate acks, acks for numbers never sent, `in_flight` counts.
//! 3. **Expiry**: the earliest unacked frame always goes again, so does every frame sent at
//!    least one RTO ago; `transmission` numbers; give-up after `max_retries`.
//! 4. **The receiving side** of [`ReliabilityLayer`]: in order, out of order, duplicates, beyond
//!    the 64-frame window, and the [`AckFrame`] after each.
//! 5. **A virtual-time simulation** of two [`ReliabilityLayer`] endpoints over a lossy link (an
//!    event queue, a one-way delay, seeded splitmix64 loss): exactly-once delivery, no
//!    spurious retransmission on a clean link, backoff doubling through an outage and ending
//!    after it, and give-up at the expected instant on a dead link.
//! 6. **[`UnifiedScheduler`]**: a proptest over random operation sequences on a timing layer, a
//!    reliability layer and two hand-set test layers, checking after every step that the cached
//!    unified deadline is the minimum over the layers, that checks never run a layer early and
//!    always run the due ones; plus its counters.
//! 7. **[`LayeredTimeouts`] on a real [`TimerService`]** with tokio's paused clock: the RTO and
//!    idle timeouts come back at the right virtual instants, one registration per connection,
//!    postponing a deadline thousands of times never resets the wheel entry nor costs a wheel
//!    operation per push, and shutdown ends `next_timeouts`, with or without a deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use ticktock::{
    AckFrame, AckOutcome, CoarseDeadline, ConnectionTimers, Instant, LayerDeadlines, LayerEvent,
    LayerId, LayeredTimeouts, Precision, Received, ReliabilityConfig, ReliabilityLayer,
    RetransmissionManager, RetransmitFrame, RtoConfig, Shutdown, TimeoutCheckResult, TimeoutEvent,
    TimeoutLayer, TimerService, TimingConfig, TimingManager, UnifiedScheduler,
};

const MS: Duration = Duration::from_millis(1);

/// The RTO settings of section 1: RFC 6298's initial value and ceiling, a QUIC-like 200 ms floor.
fn rfc_config() -> RtoConfig {
    RtoConfig {
        initial: Duration::from_secs(1),
        min: 200 * MS,
        max: Duration::from_secs(60),
        granularity: MS,
    }
}

/// A reliability layer on [`rfc_config`] that gives up after `max_retries` retransmissions.
fn rfc_layer(max_retries: u32) -> ReliabilityLayer {
    ReliabilityLayer::new(ReliabilityConfig {
        rto: rfc_config(),
        max_retries,
    })
}

fn payload(sequence: u64) -> Bytes {
    Bytes::from(sequence.to_le_bytes().to_vec())
}

fn us(micros: u64) -> Duration {
    Duration::from_micros(micros)
}

fn rto_timeout() -> LayerEvent {
    LayerEvent::Timeout(TimeoutEvent::RetransmissionTimeout)
}

/// Runs one expiry of `manager` at `now` and returns `(sequence, transmission)` of what it
/// handed back, checking the payloads on the way.
fn expire(manager: &mut RetransmissionManager, now: Instant) -> Vec<(u64, u32)> {
    let mut retransmit = Vec::new();
    let mut given_up = Vec::new();
    manager.on_timeout(now, &mut retransmit, &mut given_up);
    assert!(given_up.is_empty(), "unexpected give-up: {given_up:?}");
    retransmit
        .iter()
        .map(|frame| {
            assert_eq!(frame.payload, payload(frame.sequence));
            (frame.sequence, frame.transmission)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. RFC 6298 through the RetransmissionManager
// ---------------------------------------------------------------------------------------------

/// RFC 6298 2.1 and 2.2: before any sample the RTO is 1 s; the first sample R = 100 ms gives
/// SRTT = 100 ms, RTTVAR = 50 ms, RTO = max(200 ms, 100 + max(1, 4 * 50)) = 300 ms. Section 5:
/// the timer starts on the first send, is left alone by later sends, restarts at ack time + RTO
/// while frames remain and stops when nothing is in flight.
#[test]
fn rfc6298_first_sample_through_the_manager() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    assert_eq!(manager.deadline(), None);
    assert_eq!(manager.on_frame_sent(payload(0), t0), 0);
    assert_eq!(manager.deadline(), Some(t0 + Duration::from_secs(1)));
    // A second send while the timer runs does not restart it.
    assert_eq!(manager.on_frame_sent(payload(1), t0 + 10 * MS), 1);
    assert_eq!(manager.deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(manager.in_flight(), 2);

    let outcome = manager.on_ack(1, 0, t0 + 100 * MS);
    assert_eq!(
        outcome,
        AckOutcome {
            newly_acked: 1,
            rtt_sample: Some(100 * MS)
        }
    );
    assert_eq!(manager.rto().srtt(), Some(100 * MS));
    assert_eq!(manager.rto().rttvar(), Some(50 * MS));
    assert_eq!(manager.rto().rto(), 300 * MS);
    // Frame 1 is still in flight: the timer restarts at the ack's time + the new RTO.
    assert_eq!(manager.in_flight(), 1);
    assert_eq!(manager.deadline(), Some(t0 + 400 * MS));

    // Acking the last frame stops the timer.
    let outcome = manager.on_ack(2, 0, t0 + 150 * MS);
    assert_eq!(outcome.newly_acked, 1);
    assert_eq!(manager.in_flight(), 0);
    assert_eq!(manager.deadline(), None);
    let stats = manager.stats();
    assert_eq!((stats.sent, stats.acked, stats.rtt_samples), (2, 2, 2));
}

/// RFC 6298 2.3, by hand, with the samples the manager measures itself (ack time - send time):
///
/// | ack of | sent  | acked  | R      | RTTVAR = 3/4 RTTVAR + 1/4 abs(SRTT - R) | SRTT = 7/8 SRTT + 1/8 R | RTO         |
/// |--------|-------|--------|--------|-----------------------------------------|-------------------------|-------------|
/// | 0      | 0     | 100    | 100    | 50 (first: R/2)                         | 100 (first: R)          | 300         |
/// | 1      | 10    | 150    | 140    | 37.5 + 10 = 47.5                        | 87.5 + 17.5 = 105       | 105+190=295 |
/// | 2      | 200   | 230    | 30     | 35.625 + 18.75 = 54.375                 | 91.875 + 3.75 = 95.625  | 313.125     |
/// | 3      | 300   | 1300   | 1000   | 40.78125 + 226.09375 = 266.875          | 83.671875+125=208.671875| 1276.171875 |
///
/// (all in ms; RTO = SRTT + max(G, 4 * RTTVAR), above the 200 ms floor every time).
#[test]
fn rfc6298_following_samples_smooth_with_alpha_and_beta() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    manager.on_frame_sent(payload(0), t0);
    manager.on_frame_sent(payload(1), t0 + 10 * MS);
    manager.on_ack(1, 0, t0 + 100 * MS);

    let outcome = manager.on_ack(2, 0, t0 + 150 * MS);
    assert_eq!(outcome.rtt_sample, Some(140 * MS));
    assert_eq!(manager.rto().rttvar(), Some(us(47_500)));
    assert_eq!(manager.rto().srtt(), Some(105 * MS));
    assert_eq!(manager.rto().rto(), 295 * MS);
    assert_eq!(manager.deadline(), None);

    // The next send starts the timer with the current RTO.
    manager.on_frame_sent(payload(2), t0 + 200 * MS);
    assert_eq!(manager.deadline(), Some(t0 + 495 * MS));
    let outcome = manager.on_ack(3, 0, t0 + 230 * MS);
    assert_eq!(outcome.rtt_sample, Some(30 * MS));
    assert_eq!(manager.rto().rttvar(), Some(us(54_375)));
    assert_eq!(manager.rto().srtt(), Some(us(95_625)));
    assert_eq!(manager.rto().rto(), us(313_125));

    // A slow sample (1 s) moves RTTVAR a lot and SRTT by an eighth of the difference.
    manager.on_frame_sent(payload(3), t0 + 300 * MS);
    manager.on_frame_sent(payload(4), t0 + 1_250 * MS);
    let outcome = manager.on_ack(4, 0, t0 + 1_300 * MS);
    assert_eq!(outcome.rtt_sample, Some(Duration::from_secs(1)));
    assert_eq!(manager.rto().rttvar(), Some(us(266_875)));
    assert_eq!(
        manager.rto().srtt(),
        Some(Duration::from_nanos(208_671_875))
    );
    assert_eq!(manager.rto().rto(), Duration::from_nanos(1_276_171_875));
    // Frame 4 remains: timer at the ack + 1276.171875 ms.
    assert_eq!(
        manager.deadline(),
        Some(t0 + 1_300 * MS + Duration::from_nanos(1_276_171_875))
    );
    assert_eq!(manager.stats().rtt_samples, 4);
}

/// RFC 6298 5.5 and 5.6: each expiry doubles the RTO (300 -> 600 -> 1200 ms) and restarts the
/// timer with it; RTO never exceeds the maximum.
#[test]
fn rfc6298_backoff_doubles_on_each_expiry_and_caps_at_max() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(
        RtoConfig {
            max: Duration::from_secs(2),
            ..rfc_config()
        },
        20,
    );
    manager.on_frame_sent(payload(0), t0);
    manager.on_ack(1, 0, t0 + 100 * MS); // RTO 300 ms, nothing in flight
    let sent = t0 + 200 * MS;
    manager.on_frame_sent(payload(1), sent);
    assert_eq!(manager.deadline(), Some(sent + 300 * MS));

    // Expiry times and the RTO after each: 300 -> 600 -> 1200 -> 2000 (cap) -> 2000.
    let mut at = sent + 300 * MS;
    for (expected_rto, transmission, backoff) in [
        (600 * MS, 2, 1),
        (1_200 * MS, 3, 2),
        (2_000 * MS, 4, 3),
        (2_000 * MS, 5, 3),
        (2_000 * MS, 6, 3),
    ] {
        assert_eq!(manager.deadline(), Some(at));
        assert_eq!(expire(&mut manager, at), [(1, transmission)]);
        assert_eq!(manager.rto().rto(), expected_rto);
        assert_eq!(manager.rto().backoff(), backoff);
        assert_eq!(manager.deadline(), Some(at + expected_rto));
        at += expected_rto;
    }
    // The base RTO is untouched by backoff, and so is SRTT.
    assert_eq!(manager.rto().base_rto(), 300 * MS);
    assert_eq!(manager.rto().srtt(), Some(100 * MS));
    assert_eq!(manager.stats().timeouts, 5);
    assert_eq!(manager.stats().retransmitted, 5);
}

/// Karn's rule: the ack of a retransmitted frame gives no sample (rtt_sample None), leaves SRTT
/// and the backoff as they are; the timer still restarts (new data was acked) with the
/// backed-off RTO. The next valid sample ends the backoff.
#[test]
fn rfc6298_karns_rule_and_the_next_valid_sample_resets_backoff() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    manager.on_frame_sent(payload(0), t0);
    manager.on_ack(1, 0, t0 + 100 * MS); // SRTT 100, RTTVAR 50, RTO 300
    manager.on_frame_sent(payload(1), t0 + 200 * MS);
    manager.on_frame_sent(payload(2), t0 + 210 * MS);
    assert_eq!(expire(&mut manager, t0 + 500 * MS), [(1, 2)]);
    assert_eq!(expire(&mut manager, t0 + 1_100 * MS), [(1, 3), (2, 2)]);
    assert_eq!(manager.rto().backoff(), 2);
    assert_eq!(manager.rto().rto(), 1_200 * MS);

    // Frame 1 (sent three times) is acked: no sample, nothing changes but the timer.
    let outcome = manager.on_ack(2, 0, t0 + 1_150 * MS);
    assert_eq!(
        outcome,
        AckOutcome {
            newly_acked: 1,
            rtt_sample: None
        }
    );
    assert_eq!(manager.rto().srtt(), Some(100 * MS));
    assert_eq!(manager.rto().rttvar(), Some(50 * MS));
    assert_eq!(manager.rto().backoff(), 2);
    assert_eq!(manager.stats().karn_skipped, 1);
    assert_eq!(manager.stats().rtt_samples, 1);
    assert_eq!(manager.deadline(), Some(t0 + 2_350 * MS));

    // Frame 2 was retransmitted too: still no sample.
    manager.on_frame_sent(payload(3), t0 + 1_200 * MS);
    let outcome = manager.on_ack(3, 0, t0 + 1_250 * MS);
    assert_eq!(outcome.rtt_sample, None);
    assert_eq!(manager.rto().backoff(), 2);
    assert_eq!(manager.deadline(), Some(t0 + 2_450 * MS));

    // Frame 3 was sent once: a valid sample of 80 ms. RTTVAR = 37.5 + 5 = 42.5,
    // SRTT = 87.5 + 10 = 97.5, RTO = 97.5 + 170 = 267.5 ms, backoff over.
    let outcome = manager.on_ack(4, 0, t0 + 1_280 * MS);
    assert_eq!(outcome.rtt_sample, Some(80 * MS));
    assert_eq!(manager.rto().backoff(), 0);
    assert_eq!(manager.rto().rttvar(), Some(us(42_500)));
    assert_eq!(manager.rto().srtt(), Some(us(97_500)));
    assert_eq!(manager.rto().rto(), us(267_500));
    assert_eq!(manager.deadline(), None);
}

/// The sample is the newest newly acked frame's: a cumulative ack covering a retransmitted
/// frame and a fresh one behind it samples the fresh one; if the newest was retransmitted, no
/// sample at all.
#[test]
fn rfc6298_sample_comes_from_the_newest_newly_acked_frame() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    manager.on_frame_sent(payload(0), t0);
    assert_eq!(expire(&mut manager, t0 + Duration::from_secs(1)), [(0, 2)]);
    manager.on_frame_sent(payload(1), t0 + 1_100 * MS);
    // Acks 0 (retransmitted) and 1 (fresh, sent 150 ms ago): sample 150 ms, backoff ends.
    let outcome = manager.on_ack(2, 0, t0 + 1_250 * MS);
    assert_eq!(
        outcome,
        AckOutcome {
            newly_acked: 2,
            rtt_sample: Some(150 * MS)
        }
    );
    assert_eq!(manager.rto().backoff(), 0);

    // Both frames of an ack retransmitted: no sample. (An unacked frame older than a
    // retransmitted one has always been retransmitted too, as the earliest goes first.)
    let t1 = t0 + Duration::from_secs(2);
    manager.on_frame_sent(payload(2), t1);
    manager.on_frame_sent(payload(3), t1);
    let deadline = manager.deadline().expect("timer runs");
    assert_eq!(expire(&mut manager, deadline), [(2, 2), (3, 2)]);
    let srtt = manager.rto().srtt();
    let outcome = manager.on_ack(4, 0, deadline + 10 * MS);
    assert_eq!(
        outcome,
        AckOutcome {
            newly_acked: 2,
            rtt_sample: None
        }
    );
    assert_eq!(manager.rto().backoff(), 1);
    assert_eq!(manager.rto().srtt(), srtt);
}

/// The floor and the ceiling: a 1 ms path gets the 200 ms minimum, a 100 s sample the 60 s
/// maximum, and an initial value above the maximum is clamped too.
#[test]
fn rfc6298_min_and_max_clamps() {
    let t0 = Instant::now();
    // R = 1 ms: SRTT 1, RTTVAR 0.5, raw RTO = 1 + max(1, 2) = 3 ms -> 200 ms.
    let mut fast = RetransmissionManager::new(rfc_config(), 8);
    fast.on_frame_sent(payload(0), t0);
    fast.on_frame_sent(payload(1), t0 + MS);
    assert_eq!(fast.on_ack(1, 0, t0 + MS).rtt_sample, Some(MS));
    assert_eq!(fast.rto().base_rto(), 200 * MS);
    assert_eq!(fast.deadline(), Some(t0 + 201 * MS));

    // R = 100 s: raw RTO 100 + 200 = 300 s -> 60 s; backoff stays at the cap.
    let mut slow = RetransmissionManager::new(rfc_config(), 8);
    slow.on_frame_sent(payload(0), t0);
    slow.on_frame_sent(payload(1), t0);
    let acked = t0 + Duration::from_secs(100);
    slow.on_ack(1, 0, acked);
    assert_eq!(slow.rto().rto(), Duration::from_secs(60));
    assert_eq!(slow.deadline(), Some(acked + Duration::from_secs(60)));
    let expiry = acked + Duration::from_secs(60);
    assert_eq!(expire(&mut slow, expiry), [(1, 2)]);
    assert_eq!(slow.rto().rto(), Duration::from_secs(60));
    assert_eq!(slow.rto().backoff(), 0, "no backoff beyond the cap");
    assert_eq!(slow.deadline(), Some(expiry + Duration::from_secs(60)));

    // An initial RTO above the maximum starts the timer at the maximum.
    let mut capped = RetransmissionManager::new(
        RtoConfig {
            max: 500 * MS,
            ..rfc_config()
        },
        8,
    );
    capped.on_frame_sent(payload(0), t0);
    assert_eq!(capped.deadline(), Some(t0 + 500 * MS));
}

// ---------------------------------------------------------------------------------------------
// 2. Cumulative and selective acks
// ---------------------------------------------------------------------------------------------

#[test]
fn acks_cumulative_and_selective_bits() {
    let t0 = Instant::now();
    let mut layer = rfc_layer(8);
    for sequence in 0..10 {
        assert_eq!(layer.on_frame_sent(payload(sequence), t0), sequence);
    }
    assert_eq!(layer.in_flight(), 10);
    // Everything below 2, and 2 + 1 + {0, 2} = 3 and 5.
    let outcome = layer.on_ack(
        AckFrame {
            next_expected: 2,
            selective: 0b101,
        },
        t0 + 50 * MS,
    );
    assert_eq!(outcome.newly_acked, 4);
    assert_eq!(outcome.rtt_sample, Some(50 * MS));
    assert_eq!(layer.in_flight(), 6);
    let stats = layer.retransmission().stats();
    assert_eq!(stats.acked, 4);
    // Frames 2, 4, 6..=9 remain: an expiry hands back 2 (the earliest) and the ones sent at
    // least one RTO ago (all of them, sent at t0) — but not 3 or 5.
    let deadline = layer.next_deadline().expect("frames in flight");
    let result = layer.check_timeouts(deadline);
    let sequences: Vec<u64> = result
        .frames_to_retransmit
        .iter()
        .map(|frame| frame.sequence)
        .collect();
    assert_eq!(sequences, [2, 4, 6, 7, 8, 9]);

    // Bit 63 names next_expected + 64.
    let mut wide = RetransmissionManager::new(rfc_config(), 8);
    for sequence in 0..70 {
        wide.on_frame_sent(payload(sequence), t0);
    }
    let outcome = wide.on_ack(3, 1 << 63, t0 + 10 * MS);
    assert_eq!(outcome.newly_acked, 4); // 0, 1, 2 and 67
    assert_eq!(wide.in_flight(), 66);
    // 67 is acked: acking it again by its cumulative range changes nothing for it.
    assert_eq!(wide.on_ack(68, 0, t0 + 20 * MS).newly_acked, 64); // 3..=66
    assert_eq!(wide.in_flight(), 2); // 68, 69
}

#[test]
fn acks_duplicates_and_numbers_never_sent_do_nothing() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    for sequence in 0..4 {
        manager.on_frame_sent(payload(sequence), t0 + sequence as u32 * MS);
    }
    manager.on_ack(2, 0, t0 + 100 * MS);
    let deadline = manager.deadline();
    let rto = manager.rto().clone();
    let stats = manager.stats();

    // The same ack again, and an older one: nothing newly acked, no sample, timer untouched.
    for (next_expected, selective) in [(2, 0), (1, 0), (0, 0b1)] {
        let outcome = manager.on_ack(next_expected, selective, t0 + 300 * MS);
        assert_eq!(outcome, AckOutcome::default());
        assert_eq!(manager.deadline(), deadline);
        assert_eq!(manager.rto(), &rto);
        assert_eq!(manager.in_flight(), 2);
    }
    // Numbers never sent: selective bits past the end, a cumulative ack past the end (acks what
    // was sent, nothing more), and the extremes.
    assert_eq!(manager.on_ack(2, 1 << 40, t0 + 300 * MS).newly_acked, 0);
    assert_eq!(manager.on_ack(u64::MAX, 0, t0 + 300 * MS).newly_acked, 2);
    assert_eq!(manager.in_flight(), 0);
    assert_eq!(manager.deadline(), None);
    assert_eq!(
        manager
            .on_ack(u64::MAX, u64::MAX, t0 + 300 * MS)
            .newly_acked,
        0
    );
    assert_eq!(manager.stats().acked, stats.acked + 2);
    // Sequence numbers continue where they were: the ack past the end did not move them.
    assert_eq!(manager.next_sequence(), 4);
    assert_eq!(manager.on_frame_sent(payload(4), t0 + 400 * MS), 4);
    assert_eq!(manager.in_flight(), 1);
    assert!(manager.deadline().is_some());
}

// ---------------------------------------------------------------------------------------------
// 3. Expiry
// ---------------------------------------------------------------------------------------------

/// The earliest unacked frame always goes again; so does every frame sent at least one RTO
/// (the RTO in force at the expiry, before it doubles) ago; the others wait.
#[test]
fn expiry_retransmits_the_earliest_and_frames_sent_an_rto_ago() {
    let t0 = Instant::now();
    let mut manager = RetransmissionManager::new(rfc_config(), 8);
    manager.on_frame_sent(payload(0), t0);
    manager.on_frame_sent(payload(1), t0 + 10 * MS);
    manager.on_frame_sent(payload(2), t0 + 20 * MS);
    manager.on_frame_sent(payload(3), t0 + 500 * MS);
    // Ack of 0 at 100 ms: RTO 300 ms, timer at 400 ms.
    manager.on_ack(1, 0, t0 + 100 * MS);
    assert_eq!(manager.deadline(), Some(t0 + 400 * MS));

    // Not before the deadline.
    assert!(expire(&mut manager, t0 + 400 * MS - Duration::from_nanos(1)).is_empty());
    assert_eq!(manager.deadline(), Some(t0 + 400 * MS));
    assert_eq!(manager.stats().timeouts, 0);

    // At 400 ms (RTO 300): 1 is the earliest; 2 was sent 380 ms ago; 3 only 100 ms ago.
    assert_eq!(expire(&mut manager, t0 + 400 * MS), [(1, 2), (2, 2)]);
    assert_eq!(manager.deadline(), Some(t0 + 1_000 * MS));
    // At 1000 ms (RTO 600): 1 and 2 were sent 600 ms ago; 3 500 ms ago: not yet.
    assert_eq!(expire(&mut manager, t0 + 1_000 * MS), [(1, 3), (2, 3)]);
    assert_eq!(manager.deadline(), Some(t0 + 2_200 * MS));
    // At 2200 ms (RTO 1200): all three.
    assert_eq!(
        expire(&mut manager, t0 + 2_200 * MS),
        [(1, 4), (2, 4), (3, 2)]
    );
    // A late check: the timer restarts from when it ran, not from the deadline.
    let late = t0 + 5_000 * MS;
    assert_eq!(
        expire(&mut manager, late),
        [(1, 5), (2, 5), (3, 3)],
        "all were sent 2400 ms or more before"
    );
    assert_eq!(manager.deadline(), Some(late + 4_800 * MS));
    let stats = manager.stats();
    assert_eq!(stats.timeouts, 4);
    assert_eq!(stats.retransmitted, 10); // 2 + 2 + 3 + 3
    assert_eq!(manager.in_flight(), 3);
}

/// Frames acked by a selective ack are skipped by the expiry; the earliest *unacked* one is
/// the one that always goes.
#[test]
fn expiry_skips_selectively_acked_frames() {
    let t0 = Instant::now();
    let mut layer = rfc_layer(8);
    layer.on_frame_sent(payload(0), t0);
    layer.on_frame_sent(payload(1), t0 + 900 * MS);
    layer.on_frame_sent(payload(2), t0 + 950 * MS);
    // Ack 0 cumulatively and 2 selectively at 960 ms: samples frame 2 (10 ms): RTO 200 ms.
    let outcome = layer.on_ack(
        AckFrame {
            next_expected: 1,
            selective: 0b1,
        },
        t0 + 960 * MS,
    );
    assert_eq!(outcome.rtt_sample, Some(10 * MS));
    assert_eq!(layer.next_deadline(), Some(t0 + 1_160 * MS));
    let result = layer.check_timeouts(t0 + 1_160 * MS);
    assert_eq!(result.layer, "reliability");
    assert_eq!(result.events, [rto_timeout()]);
    assert_eq!(
        result.frames_to_retransmit,
        [RetransmitFrame {
            sequence: 1,
            payload: payload(1),
            transmission: 2
        }]
    );
}

/// After `max_retries` retransmissions the next expiry gives up: one
/// `RetransmissionLimit { transmissions: max_retries + 1 }` per frame at the limit, nothing to
/// retransmit, the timer stops, nothing is left in flight.
#[test]
fn expiry_gives_up_after_max_retries() {
    let t0 = Instant::now();
    let mut layer = rfc_layer(3);
    layer.on_frame_sent(payload(0), t0);
    layer.on_frame_sent(payload(1), t0 + 500 * MS);
    // RTO 1 s, doubling: expiries at 1, 3, 7 s retransmit (0 then both); 15 s gives up.
    let mut transmissions_of_0 = Vec::new();
    for at in [1, 3, 7] {
        let now = t0 + Duration::from_secs(at);
        assert_eq!(layer.next_deadline(), Some(now));
        let result = layer.check_timeouts(now);
        assert_eq!(result.events, [rto_timeout()]);
        transmissions_of_0.push(result.frames_to_retransmit[0].transmission);
        assert!(!layer.has_given_up());
    }
    assert_eq!(transmissions_of_0, [2, 3, 4]);
    let at = t0 + Duration::from_secs(15);
    assert_eq!(layer.next_deadline(), Some(at));
    let result = layer.check_timeouts(at);
    // Frame 1 was sent at 0.5 s, retransmitted at 3 and 7 s: 3 transmissions, under the limit,
    // but the connection is lost anyway and it is dropped with the rest.
    assert_eq!(
        result.events,
        [LayerEvent::RetransmissionLimit {
            sequence: 0,
            transmissions: 4
        }]
    );
    assert!(result.frames_to_retransmit.is_empty());
    assert!(layer.has_given_up());
    assert_eq!(layer.next_deadline(), None);
    assert_eq!(layer.in_flight(), 0);
    let stats = layer.retransmission().stats();
    assert_eq!(stats.given_up, 1);
    assert_eq!(stats.retransmitted, 5); // 0 three times, 1 twice
    // Nothing more happens.
    assert!(
        layer
            .check_timeouts(at + Duration::from_secs(100))
            .is_empty()
    );
    assert_eq!(layer.retransmission().stats().timeouts, 4);
}

/// `max_retries: 0`: the first expiry gives up, with one transmission.
#[test]
fn expiry_with_no_retries_gives_up_at_once() {
    let t0 = Instant::now();
    let mut layer = rfc_layer(0);
    layer.on_frame_sent(payload(0), t0);
    layer.on_frame_sent(payload(1), t0);
    let result = layer.check_timeouts(t0 + Duration::from_secs(1));
    assert_eq!(
        result.events,
        [
            LayerEvent::RetransmissionLimit {
                sequence: 0,
                transmissions: 1
            },
            LayerEvent::RetransmissionLimit {
                sequence: 1,
                transmissions: 1
            }
        ]
    );
    assert!(layer.has_given_up());
    assert_eq!(layer.next_deadline(), None);
}

// ---------------------------------------------------------------------------------------------
// 4. The receiving side
// ---------------------------------------------------------------------------------------------

fn ack(next_expected: u64, selective: u64) -> AckFrame {
    AckFrame {
        next_expected,
        selective,
    }
}

#[test]
fn receiving_in_order_out_of_order_duplicate_and_beyond_window() {
    let mut layer = ReliabilityLayer::new(ReliabilityConfig::default());
    assert_eq!(layer.ack_frame(), ack(0, 0));
    let steps: [(u64, Received, AckFrame); 14] = [
        (0, Received::New, ack(1, 0)),
        (0, Received::Duplicate, ack(1, 0)),
        (2, Received::New, ack(1, 0b1)),
        (4, Received::New, ack(1, 0b101)),
        (2, Received::Duplicate, ack(1, 0b101)),
        (4, Received::Duplicate, ack(1, 0b101)),
        // 1 fills the hole: slides past 2, stops at the gap at 3.
        (1, Received::New, ack(3, 0b1)),
        (3, Received::New, ack(5, 0)),
        (3, Received::Duplicate, ack(5, 0)),
        // The window holds next_expected + 1 ..= next_expected + 64.
        (69, Received::New, ack(5, 1 << 63)),
        (70, Received::BeyondWindow, ack(5, 1 << 63)),
        (u64::MAX, Received::BeyondWindow, ack(5, 1 << 63)),
        (6, Received::New, ack(5, (1 << 63) | 1)),
        // 5 slides over 6 and stops at the gap at 7; bit 63 (69) becomes bit 61.
        (5, Received::New, ack(7, 1 << 61)),
    ];
    for (sequence, received, after) in steps {
        assert_eq!(
            layer.on_frame_received(sequence),
            received,
            "frame {sequence}"
        );
        assert_eq!(layer.ack_frame(), after, "after frame {sequence}");
    }
    // 70 now fits (bit 62).
    assert_eq!(layer.on_frame_received(70), Received::New);
    assert_eq!(layer.ack_frame(), ack(7, (1 << 61) | (1 << 62)));
}

#[test]
fn receiving_a_full_window_then_the_gap_slides_all_the_way() {
    let mut layer = ReliabilityLayer::new(ReliabilityConfig::default());
    for sequence in (1..=64).rev() {
        assert_eq!(layer.on_frame_received(sequence), Received::New);
    }
    assert_eq!(layer.ack_frame(), ack(0, u64::MAX));
    assert_eq!(layer.on_frame_received(65), Received::BeyondWindow);
    assert_eq!(layer.on_frame_received(0), Received::New);
    assert_eq!(layer.ack_frame(), ack(65, 0));
    assert_eq!(layer.on_frame_received(64), Received::Duplicate);

    // 63 frames beyond the gap (bit 63 clear): the slide shifts by 64.
    let mut layer = ReliabilityLayer::new(ReliabilityConfig::default());
    for sequence in 1..=63 {
        layer.on_frame_received(sequence);
    }
    assert_eq!(layer.ack_frame(), ack(0, u64::MAX >> 1));
    assert_eq!(layer.on_frame_received(0), Received::New);
    assert_eq!(layer.ack_frame(), ack(64, 0));
    // The receiver's ack acknowledges exactly what arrived on the sender.
    let t0 = Instant::now();
    let mut sender = ReliabilityLayer::new(ReliabilityConfig::default());
    for sequence in 0..70 {
        sender.on_frame_sent(payload(sequence), t0);
    }
    assert_eq!(sender.on_ack(layer.ack_frame(), t0 + MS).newly_acked, 64);
    assert_eq!(sender.in_flight(), 6);
}

// ---------------------------------------------------------------------------------------------
// 5. Virtual-time simulation of a lossy link
// ---------------------------------------------------------------------------------------------

/// splitmix64: a tiny seeded generator, so every run loses the same packets.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Data,
    Ack,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Packet {
    Data { sequence: u64, payload: Bytes },
    Ack { next_expected: u64, selective: u64 },
}

/// One retransmission timer expiry at A.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expiry {
    at: Duration,
    retransmitted: Vec<(u64, u32)>,
    rto_after: Duration,
    backoff_after: u32,
    next_deadline: Option<Duration>,
}

/// One ack applied at A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AckTrace {
    at: Duration,
    outcome: AckOutcome,
    backoff_after: u32,
    rto_after: Duration,
}

type Loss = Box<dyn FnMut(Duration, Direction) -> bool>;

/// A sends `frames` frames to B over a link with `delay` each way; `lose(send time, direction)`
/// decides which packets vanish. B acks every data packet it gets. Time jumps to the next
/// packet arrival or A's retransmission deadline, whichever is first (arrivals first on a tie).
struct Sim {
    base: Instant,
    now: Duration,
    a: ReliabilityLayer,
    b: ReliabilityLayer,
    queue: BinaryHeap<Reverse<(Duration, u64, Packet)>>,
    order: u64,
    delay: Duration,
    lose: Loss,
    frames: u64,
    window: usize,
    /// The highest cumulative ack A has seen: A sends at most 64 frames past it, so B never
    /// sees a frame beyond its window.
    acked_below: u64,
    /// `Received::New` per sequence number at B.
    delivered: Vec<u32>,
    duplicates: u64,
    beyond_window: u64,
    expiries: Vec<Expiry>,
    acks: Vec<AckTrace>,
    gave_up: Option<(Duration, Vec<LayerEvent>)>,
}

impl Sim {
    fn new(
        config: ReliabilityConfig,
        frames: u64,
        window: usize,
        delay: Duration,
        lose: Loss,
    ) -> Self {
        Self {
            base: Instant::now(),
            now: Duration::ZERO,
            a: ReliabilityLayer::new(config),
            b: ReliabilityLayer::new(config),
            queue: BinaryHeap::new(),
            order: 0,
            delay,
            lose,
            frames,
            window,
            acked_below: 0,
            delivered: vec![0; usize::try_from(frames).unwrap()],
            duplicates: 0,
            beyond_window: 0,
            expiries: Vec::new(),
            acks: Vec::new(),
            gave_up: None,
        }
    }

    fn lossy(config: ReliabilityConfig, percent: u64, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        Self::new(
            config,
            1000,
            32,
            20 * MS,
            Box::new(move |_, _| rng.percent(percent)),
        )
    }

    fn offset(&self, at: Instant) -> Duration {
        at - self.base
    }

    fn send(&mut self, packet: Packet, direction: Direction) {
        if (self.lose)(self.now, direction) {
            return;
        }
        self.order += 1;
        self.queue
            .push(Reverse((self.now + self.delay, self.order, packet)));
    }

    fn fill_window(&mut self) {
        let now = self.base + self.now;
        while self.a.retransmission().next_sequence() < self.frames
            && self.a.in_flight() < self.window
            && self.a.retransmission().next_sequence() < self.acked_below + 64
        {
            let sequence = self.a.retransmission().next_sequence();
            assert_eq!(self.a.on_frame_sent(payload(sequence), now), sequence);
            self.send(
                Packet::Data {
                    sequence,
                    payload: payload(sequence),
                },
                Direction::Data,
            );
        }
    }

    /// Runs until nothing is left to do, A gives up, or `limit` passes.
    fn run(&mut self, limit: Duration) {
        loop {
            self.fill_window();
            let arrival = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let deadline = self.a.next_deadline().map(|at| self.offset(at));
            let next = match (arrival, deadline) {
                (None, None) => return,
                (Some(at), None) | (None, Some(at)) => at,
                (Some(arrival), Some(deadline)) => arrival.min(deadline),
            };
            assert!(next >= self.now, "time went backwards");
            if next > limit {
                return;
            }
            self.now = next;
            if arrival == Some(next) {
                let Some(Reverse((_, _, packet))) = self.queue.pop() else {
                    unreachable!()
                };
                self.arrive(packet);
            } else {
                self.expire();
                if self.gave_up.is_some() {
                    return;
                }
            }
        }
    }

    fn arrive(&mut self, packet: Packet) {
        let now = self.base + self.now;
        match packet {
            Packet::Data { sequence, payload } => {
                match self.b.on_frame_received(sequence) {
                    Received::New => {
                        assert_eq!(payload, self::payload(sequence));
                        self.delivered[usize::try_from(sequence).unwrap()] += 1;
                    }
                    Received::Duplicate => self.duplicates += 1,
                    Received::BeyondWindow => self.beyond_window += 1,
                }
                let AckFrame {
                    next_expected,
                    selective,
                } = self.b.ack_frame();
                self.send(
                    Packet::Ack {
                        next_expected,
                        selective,
                    },
                    Direction::Ack,
                );
            }
            Packet::Ack {
                next_expected,
                selective,
            } => {
                let outcome = self.a.on_ack(
                    AckFrame {
                        next_expected,
                        selective,
                    },
                    now,
                );
                self.acked_below = self.acked_below.max(next_expected);
                self.acks.push(AckTrace {
                    at: self.now,
                    outcome,
                    backoff_after: self.a.retransmission().rto().backoff(),
                    rto_after: self.a.retransmission().rto().rto(),
                });
            }
        }
    }

    fn expire(&mut self) {
        let now = self.base + self.now;
        assert_eq!(self.a.next_deadline(), Some(now));
        let result = self.a.check_timeouts(now);
        assert!(
            !result.is_empty(),
            "a due layer found nothing at {:?}",
            self.now
        );
        if result
            .events
            .iter()
            .any(|event| matches!(event, LayerEvent::RetransmissionLimit { .. }))
        {
            assert!(result.frames_to_retransmit.is_empty());
            self.gave_up = Some((self.now, result.events));
            return;
        }
        assert_eq!(result.events, [rto_timeout()]);
        let rto = self.a.retransmission().rto();
        let expiry = Expiry {
            at: self.now,
            retransmitted: result
                .frames_to_retransmit
                .iter()
                .map(|frame| (frame.sequence, frame.transmission))
                .collect(),
            rto_after: rto.rto(),
            backoff_after: rto.backoff(),
            next_deadline: self.a.next_deadline().map(|at| self.offset(at)),
        };
        self.expiries.push(expiry);
        for frame in result.frames_to_retransmit {
            self.send(
                Packet::Data {
                    sequence: frame.sequence,
                    payload: frame.payload,
                },
                Direction::Data,
            );
        }
    }
}

fn sim_config() -> ReliabilityConfig {
    ReliabilityConfig {
        rto: RtoConfig {
            initial: Duration::from_secs(1),
            min: 100 * MS,
            max: Duration::from_secs(2),
            granularity: MS,
        },
        max_retries: 30,
    }
}

#[test]
fn sim_lossy_link_delivers_every_frame_exactly_once() {
    for (percent, seed) in [(10, 1), (20, 0x5eed), (30, 0xdead_beef), (30, 42)] {
        let mut sim = Sim::lossy(sim_config(), percent, seed);
        sim.run(Duration::from_secs(3_600));
        let context = format!("{percent}% loss, seed {seed:#x}");
        assert!(
            sim.gave_up.is_none(),
            "{context}: gave up: {:?}",
            sim.gave_up
        );
        assert!(
            sim.delivered.iter().all(|&count| count == 1),
            "{context}: not every frame delivered once: {:?}",
            sim.delivered
                .iter()
                .enumerate()
                .filter(|(_, count)| **count != 1)
                .take(10)
                .collect::<Vec<_>>()
        );
        assert_eq!(sim.b.ack_frame(), ack(1000, 0), "{context}");
        assert_eq!(sim.a.in_flight(), 0, "{context}");
        assert_eq!(sim.a.next_deadline(), None, "{context}");
        assert!(!sim.a.has_given_up(), "{context}");
        assert_eq!(sim.beyond_window, 0, "{context}");
        let stats = sim.a.retransmission().stats();
        assert_eq!(stats.sent, 1000, "{context}");
        assert_eq!(stats.acked, 1000, "{context}");
        assert!(stats.retransmitted > 0, "{context}: {stats:?}");
        assert_eq!(stats.given_up, 0, "{context}");
        // Every expiry handed back at least the earliest frame.
        assert!(
            sim.expiries
                .iter()
                .all(|expiry| !expiry.retransmitted.is_empty()),
            "{context}"
        );
    }
}

#[test]
fn sim_clean_link_never_retransmits() {
    // RTT 40 ms against an RTO of at least 100 ms (1 s before the first sample).
    let mut sim = Sim::lossy(sim_config(), 0, 7);
    sim.run(Duration::from_secs(3_600));
    assert!(sim.delivered.iter().all(|&count| count == 1));
    assert_eq!(sim.duplicates, 0);
    assert_eq!(sim.expiries, []);
    let stats = sim.a.retransmission().stats();
    assert_eq!(stats.retransmitted, 0, "{stats:?}");
    assert_eq!(stats.timeouts, 0, "{stats:?}");
    assert_eq!(stats.karn_skipped, 0, "{stats:?}");
    assert_eq!(stats.rtt_samples, sim.acks.len() as u64);
    assert!(
        sim.acks
            .iter()
            .all(|trace| trace.outcome.rtt_sample == Some(40 * MS))
    );
    assert_eq!(sim.a.in_flight(), 0);
    // 1000 frames, 32 per 40 ms round trip.
    // 32 frames per 40 ms round trip: the 32nd batch (frames 992..=999) goes at 1240 ms and
    // its acks are back at 1280 ms.
    assert_eq!(sim.now, 1_280 * MS);
}

/// Stop-and-wait over a 20 ms link that loses every packet sent in [1 s, 3 s).
///
/// Every RTT sample is 40 ms: SRTT stays 40 ms, RTTVAR decays from 20 ms, so the base RTO is
/// 40 + 80 = 120 ms after the first sample and clamped to the 100 ms floor from the second on.
/// Frame 25 goes out at 1000 ms and is lost, as are its retransmissions at 1100, 1300, 1700 and
/// 2500 ms: the gaps from each expiry to the next deadline are 200, 400, 800, 1600, 3200 ms. The
/// retransmission at 4100 ms gets through; its ack (4140 ms) gives no sample (Karn), so the
/// backoff stays at 5 — the next frame's ack (4180 ms) is a valid sample and ends it.
#[test]
fn sim_outage_backoff_doubles_then_resets() {
    let config = ReliabilityConfig {
        rto: RtoConfig {
            max: Duration::from_secs(60),
            ..sim_config().rto
        },
        max_retries: 8,
    };
    let outage = 1_000 * MS..3_000 * MS;
    let mut sim = Sim::new(
        config,
        30,
        1,
        20 * MS,
        Box::new(move |at, _| outage.contains(&at)),
    );
    sim.run(Duration::from_secs(60));
    assert!(sim.gave_up.is_none());
    assert!(sim.delivered.iter().all(|&count| count == 1));
    let ms = |list: &[u64]| {
        list.iter()
            .map(|&n| Duration::from_millis(n))
            .collect::<Vec<_>>()
    };
    let at: Vec<Duration> = sim.expiries.iter().map(|expiry| expiry.at).collect();
    assert_eq!(at, ms(&[1_100, 1_300, 1_700, 2_500, 4_100]));
    let gaps: Vec<Duration> = sim
        .expiries
        .iter()
        .map(|expiry| expiry.next_deadline.unwrap() - expiry.at)
        .collect();
    assert_eq!(gaps, ms(&[200, 400, 800, 1_600, 3_200]));
    for pair in gaps.windows(2) {
        assert_eq!(pair[1], pair[0] * 2);
    }
    assert_eq!(
        sim.expiries
            .iter()
            .map(|expiry| (expiry.rto_after, expiry.backoff_after))
            .collect::<Vec<_>>(),
        ms(&[200, 400, 800, 1_600, 3_200])
            .into_iter()
            .zip(1..=5)
            .collect::<Vec<_>>()
    );
    assert!(
        sim.expiries
            .iter()
            .zip(2..)
            .all(|(expiry, transmission)| expiry.retransmitted == [(25, transmission)])
    );
    // After the outage: the Karn-skipped ack keeps the backoff, the next valid sample ends it.
    let after: Vec<&AckTrace> = sim
        .acks
        .iter()
        .filter(|trace| trace.at > 4_100 * MS)
        .collect();
    assert_eq!(after[0].at, 4_140 * MS);
    assert_eq!(
        after[0].outcome,
        AckOutcome {
            newly_acked: 1,
            rtt_sample: None
        }
    );
    assert_eq!(after[0].backoff_after, 5);
    assert_eq!(after[1].at, 4_180 * MS);
    assert_eq!(after[1].outcome.rtt_sample, Some(40 * MS));
    assert_eq!(after[1].backoff_after, 0);
    assert_eq!(after[1].rto_after, 100 * MS);
    assert_eq!(sim.a.retransmission().stats().karn_skipped, 1);
}

/// The same link dying for good at 1 s, RTO capped at 1 s, 6 retries: expiries at
/// 1000 + 100, + 200, + 400, + 800, + 1000 (cap), + 1000, and at + 1000 more = 5500 ms the
/// seventh expiry gives up on frame 25 after 7 transmissions.
#[test]
fn sim_dead_link_gives_up_at_the_sum_of_doubled_rtos() {
    let config = ReliabilityConfig {
        rto: RtoConfig {
            max: Duration::from_secs(1),
            ..sim_config().rto
        },
        max_retries: 6,
    };
    let mut sim = Sim::new(
        config,
        1_000,
        1,
        20 * MS,
        Box::new(|at, _| at >= 1_000 * MS),
    );
    sim.run(Duration::from_secs(3_600));
    let at: Vec<u128> = sim
        .expiries
        .iter()
        .map(|expiry| expiry.at.as_millis())
        .collect();
    assert_eq!(at, [1_100, 1_300, 1_700, 2_500, 3_500, 4_500]);
    assert_eq!(
        sim.gave_up,
        Some((
            5_500 * MS,
            vec![LayerEvent::RetransmissionLimit {
                sequence: 25,
                transmissions: 7
            }]
        ))
    );
    assert!(sim.a.has_given_up());
    assert_eq!(sim.a.next_deadline(), None);
    assert_eq!(sim.a.in_flight(), 0);
    let stats = sim.a.retransmission().stats();
    assert_eq!(stats.retransmitted, 6);
    assert_eq!(stats.given_up, 1);
    assert_eq!(stats.timeouts, 7);

    // With no estimate at all (the link is dead from the start), RTO 1 s, cap 60 s, 3 retries:
    // 1 + 2 + 4 + 8 = 15 s.
    let mut sim = Sim::new(
        ReliabilityConfig {
            rto: rfc_config(),
            max_retries: 3,
        },
        1,
        1,
        20 * MS,
        Box::new(|_, _| true),
    );
    sim.run(Duration::from_secs(3_600));
    assert_eq!(
        sim.gave_up,
        Some((
            Duration::from_secs(15),
            vec![LayerEvent::RetransmissionLimit {
                sequence: 0,
                transmissions: 4
            }]
        ))
    );
}

// ---------------------------------------------------------------------------------------------
// 6. UnifiedScheduler
// ---------------------------------------------------------------------------------------------

/// A layer whose deadline is set by hand; reports a `User(0)` timeout when checked due, and
/// counts how often it was checked.
#[derive(Debug)]
struct HandSet {
    name: &'static str,
    deadline: Option<Instant>,
    checks: u32,
}

impl HandSet {
    fn new(name: &'static str, deadline: Option<Instant>) -> Self {
        Self {
            name,
            deadline,
            checks: 0,
        }
    }
}

impl TimeoutLayer for HandSet {
    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn check_timeouts(&mut self, now: Instant) -> TimeoutCheckResult {
        self.checks += 1;
        let mut result = TimeoutCheckResult::empty(self.name);
        if self.deadline.is_some_and(|at| at <= now) {
            self.deadline = None;
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::User(0)));
        }
        result
    }

    fn layer_name(&self) -> &'static str {
        self.name
    }
}

const NAMES: [&str; 4] = ["timing", "reliability", "hand-0", "hand-1"];

struct Layers {
    timing: LayerId<TimingManager>,
    reliability: LayerId<ReliabilityLayer>,
    hand: [LayerId<HandSet>; 2],
}

impl Layers {
    fn add(scheduler: &mut UnifiedScheduler, now: Instant) -> Self {
        let timing = scheduler.add_layer(TimingManager::new(
            TimingConfig {
                idle_timeout: Duration::from_secs(3),
                handshake_timeout: Some(Duration::from_secs(2)),
                keep_alive: Some(Duration::from_secs(1)),
            },
            now,
        ));
        let reliability = scheduler.add_layer(ReliabilityLayer::new(ReliabilityConfig {
            rto: RtoConfig {
                initial: 500 * MS,
                min: 50 * MS,
                max: Duration::from_secs(4),
                granularity: MS,
            },
            max_retries: 4,
        }));
        let hand = [
            scheduler.add_layer(HandSet::new(NAMES[2], None)),
            scheduler.add_layer(HandSet::new(NAMES[3], None)),
        ];
        Self {
            timing,
            reliability,
            hand,
        }
    }

    /// Each layer's own deadline, read from the layer.
    fn deadlines(&self, scheduler: &UnifiedScheduler) -> [Option<Instant>; 4] {
        [
            scheduler.layer(self.timing).unwrap().next_deadline(),
            scheduler.layer(self.reliability).unwrap().next_deadline(),
            scheduler.layer(self.hand[0]).unwrap().next_deadline(),
            scheduler.layer(self.hand[1]).unwrap().next_deadline(),
        ]
    }

    /// The minima of the layers' own exact and coarse deadlines.
    fn split(&self, scheduler: &UnifiedScheduler) -> LayerDeadlines {
        let each = [
            scheduler.layer(self.timing).unwrap().next_deadlines(),
            scheduler.layer(self.reliability).unwrap().next_deadlines(),
            scheduler.layer(self.hand[0]).unwrap().next_deadlines(),
            scheduler.layer(self.hand[1]).unwrap().next_deadlines(),
        ];
        LayerDeadlines {
            exact: each.iter().filter_map(|d| d.exact).min(),
            coarse: each.iter().filter_map(|d| d.coarse).min(),
        }
    }

    fn checks(&self, scheduler: &UnifiedScheduler) -> [u32; 2] {
        [
            scheduler.layer(self.hand[0]).unwrap().checks,
            scheduler.layer(self.hand[1]).unwrap().checks,
        ]
    }
}

fn minimum(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().copied().min()
}

#[derive(Debug, Clone)]
enum Op {
    FrameSent,
    /// `next_expected` is taken modulo (frames sent + 2).
    Ack {
        next_expected: u64,
        selective: u64,
    },
    PacketReceived,
    PacketSent,
    Established,
    StartPathValidation {
        timeout_ms: u64,
    },
    PathValidated,
    /// Makes one of the timing layer's four kinds exact or coarse.
    SetPrecision {
        kind: usize,
        coarse: bool,
    },
    /// Sets hand-set layer `which` to now + `offset_ms` (negative: already passed), or none.
    SetHand {
        which: usize,
        offset_ms: Option<i64>,
    },
    /// Advances time and checks.
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::FrameSent),
        3 => (any::<u64>(), prop_oneof![Just(0u64), any::<u64>(), 0u64..16])
            .prop_map(|(next_expected, selective)| Op::Ack { next_expected, selective }),
        2 => Just(Op::PacketReceived),
        2 => Just(Op::PacketSent),
        1 => Just(Op::Established),
        1 => (0u64..3_000).prop_map(|timeout_ms| Op::StartPathValidation { timeout_ms }),
        1 => Just(Op::PathValidated),
        1 => (0usize..4, any::<bool>()).prop_map(|(kind, coarse)| Op::SetPrecision { kind, coarse }),
        4 => (0usize..2, proptest::option::of(-500i64..4_000))
            .prop_map(|(which, offset_ms)| Op::SetHand { which, offset_ms }),
        5 => (0u64..1_500).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn offset(now: Instant, ms: i64) -> Instant {
    let by = Duration::from_millis(ms.unsigned_abs());
    if ms < 0 { now - by } else { now + by }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Deterministic: the same 256 sequences every run, and no regression files written
        // next to the tests.
        rng_seed: RngSeed::Fixed(0x71c7_70c7),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// After every operation: the unified deadline is the minimum of the layers' own deadlines;
    /// a check runs exactly the layers due (never one whose deadline is after `now`), in the
    /// order they were added, each due one reporting something, and leaves the unified deadline
    /// after `now`.
    #[test]
    fn scheduler_unified_deadline_is_the_minimum_of_the_layers(
        ops in proptest::collection::vec(op(), 0..200)
    ) {
        let base = Instant::now();
        let mut now = base;
        let mut scheduler = UnifiedScheduler::new();
        let layers = Layers::add(&mut scheduler, now);
        prop_assert_eq!(scheduler.len(), 4);
        prop_assert_eq!(
            scheduler.calculate_unified_deadline(),
            minimum(&layers.deadlines(&scheduler))
        );
        for op in ops {
            match op {
                Op::FrameSent => {
                    let mut layer = scheduler.layer_mut(layers.reliability).unwrap();
                    let sequence = layer.retransmission().next_sequence();
                    prop_assert_eq!(layer.on_frame_sent(payload(sequence), now), sequence);
                }
                Op::Ack { next_expected, selective } => {
                    let mut layer = scheduler.layer_mut(layers.reliability).unwrap();
                    let next_expected =
                        next_expected % (layer.retransmission().next_sequence() + 2);
                    layer.on_ack(AckFrame { next_expected, selective }, now);
                }
                Op::PacketReceived => {
                    scheduler.layer_mut(layers.timing).unwrap().on_packet_received(now);
                }
                Op::PacketSent => {
                    scheduler.layer_mut(layers.timing).unwrap().on_packet_sent(now);
                }
                Op::Established => {
                    scheduler.layer_mut(layers.timing).unwrap().on_established();
                }
                Op::StartPathValidation { timeout_ms } => {
                    scheduler
                        .layer_mut(layers.timing)
                        .unwrap()
                        .start_path_validation(now, Duration::from_millis(timeout_ms));
                }
                Op::PathValidated => {
                    scheduler.layer_mut(layers.timing).unwrap().on_path_validated();
                }
                Op::SetPrecision { kind, coarse } => {
                    let kind = [
                        TimeoutEvent::IdleTimeout,
                        TimeoutEvent::ConnectionTimeout,
                        TimeoutEvent::PathValidationTimeout,
                        TimeoutEvent::KeepAlive,
                    ][kind];
                    let precision = if coarse { Precision::Coarse } else { Precision::Exact };
                    let mut layer = scheduler.layer_mut(layers.timing).unwrap();
                    prop_assert!(layer.set_precision(kind, precision));
                    prop_assert_eq!(layer.precision(kind), precision);
                }
                Op::SetHand { which, offset_ms } => {
                    scheduler.layer_mut(layers.hand[which]).unwrap().deadline =
                        offset_ms.map(|ms| offset(now, ms));
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    let before = layers.deadlines(&scheduler);
                    let checks_before = layers.checks(&scheduler);
                    let run_before = scheduler.stats().layers_run;
                    let due: Vec<bool> =
                        before.iter().map(|at| at.is_some_and(|at| at <= now)).collect();
                    let results = scheduler.check_unified_timeouts(now);
                    // Never early, none missed, in layer order.
                    let reported: Vec<&str> = results.iter().map(|result| result.layer).collect();
                    let expected: Vec<&str> = NAMES
                        .iter()
                        .zip(&due)
                        .filter(|(_, due)| **due)
                        .map(|(name, _)| *name)
                        .collect();
                    prop_assert_eq!(reported, expected, "before: {:?}, now: {:?}", before, now);
                    let checks = layers.checks(&scheduler);
                    for ((after, before), due) in checks.iter().zip(checks_before).zip(&due[2..]) {
                        prop_assert_eq!(after - before, u32::from(*due), "hand-set layer run iff due");
                    }
                    prop_assert_eq!(
                        scheduler.stats().layers_run - run_before,
                        due.iter().filter(|due| **due).count() as u64
                    );
                    let unified = scheduler.calculate_unified_deadline();
                    prop_assert!(unified.is_none_or(|at| at > now), "{:?} <= {:?}", unified, now);
                }
            }
            prop_assert_eq!(
                scheduler.calculate_unified_deadline(),
                minimum(&layers.deadlines(&scheduler)),
                "after {:?}", op
            );
            prop_assert_eq!(
                scheduler.unified_deadlines(),
                layers.split(&scheduler),
                "after {:?}", op
            );
        }
    }
}

#[test]
fn scheduler_stats_count_cache_hits_changes_and_layers_run() {
    let t0 = Instant::now();
    let mut scheduler = UnifiedScheduler::new();
    assert!(scheduler.is_empty());
    assert_eq!(scheduler.calculate_unified_deadline(), None);
    let a = scheduler.add_layer(HandSet::new("a", Some(t0 + 10 * MS)));
    let b = scheduler.add_layer(HandSet::new("b", Some(t0 + 20 * MS)));
    let c = scheduler.add_layer(HandSet::new("c", None));
    assert_eq!(scheduler.len(), 3);
    assert_eq!(scheduler.stats().deadline_changes, 2);

    let stats = scheduler.stats();
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 10 * MS));
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 10 * MS));
    let after = scheduler.stats();
    assert_eq!(after.deadline_queries - stats.deadline_queries, 2);
    assert_eq!(after.cache_hits - stats.cache_hits, 2, "nothing changed");

    // A guard that changes nothing is no change.
    drop(scheduler.layer_mut(a).unwrap());
    assert_eq!(scheduler.stats().deadline_changes, 2);
    // A layer other than the minimum moving: still a cache hit.
    scheduler.layer_mut(b).unwrap().deadline = Some(t0 + 25 * MS);
    scheduler.layer_mut(c).unwrap().deadline = Some(t0 + 30 * MS);
    let stats = scheduler.stats();
    assert_eq!(stats.deadline_changes, 4);
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 10 * MS));
    assert_eq!(scheduler.stats().cache_hits, stats.cache_hits + 1);
    // The minimum moving earlier: still a hit.
    scheduler.layer_mut(a).unwrap().deadline = Some(t0 + 5 * MS);
    let stats = scheduler.stats();
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 5 * MS));
    assert_eq!(scheduler.stats().cache_hits, stats.cache_hits + 1);
    // The minimum moving later: recomputed once, then hits again.
    scheduler.layer_mut(a).unwrap().deadline = Some(t0 + 40 * MS);
    let stats = scheduler.stats();
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 25 * MS));
    assert_eq!(scheduler.stats().cache_hits, stats.cache_hits);
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 25 * MS));
    assert_eq!(scheduler.stats().cache_hits, stats.cache_hits + 1);

    // A check before anything is due runs no layer.
    assert!(scheduler.check_unified_timeouts(t0 + 24 * MS).is_empty());
    let stats = scheduler.stats();
    assert_eq!(stats.total_checks, 1);
    assert_eq!(stats.layers_run, 0);
    // At 30 ms: b (25) and c (30) are due, a (40) is not and is not run.
    let results = scheduler.check_unified_timeouts(t0 + 30 * MS);
    assert_eq!(
        results
            .iter()
            .map(|result| result.layer)
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
    let stats = scheduler.stats();
    assert_eq!(stats.total_checks, 2);
    assert_eq!(stats.layers_run, 2);
    assert_eq!(scheduler.layer(a).unwrap().checks, 0);
    assert_eq!(scheduler.layer(b).unwrap().checks, 1);
    assert_eq!(scheduler.layer(c).unwrap().checks, 1);
    assert_eq!(scheduler.calculate_unified_deadline(), Some(t0 + 40 * MS));
    assert!(scheduler.cache_hit_rate() > 0.0 && scheduler.cache_hit_rate() < 1.0);
    assert_eq!(
        scheduler.layer_stats(),
        [("a", None), ("b", None), ("c", None)]
    );
}

#[test]
fn scheduler_layer_ids_are_typed() {
    let t0 = Instant::now();
    let mut first = UnifiedScheduler::new();
    let hand = first.add_layer(HandSet::new("hand", None));
    let mut second = UnifiedScheduler::new();
    let timing = second.add_layer(TimingManager::new(TimingConfig::default(), t0));
    // An id of another type at the same index does not reach the layer.
    assert!(second.layer(hand).is_none());
    assert!(second.layer_mut(hand).is_none());
    assert!(first.layer(timing).is_none());
    // An index past the end neither.
    let mut third = UnifiedScheduler::new();
    for _ in 0..2 {
        third.add_layer(TimingManager::new(TimingConfig::default(), t0));
    }
    let far = third.add_layer(TimingManager::new(TimingConfig::default(), t0));
    assert!(second.layer(far).is_none());
    assert!(third.layer(far).is_some());
}

/// A zero keep-alive period counts as one nanosecond: the layer is never due again right after
/// its own check (which would make `next_timeouts` a busy loop).
#[test]
fn timing_zero_keep_alive_is_not_due_again_right_after_its_check() {
    let t0 = Instant::now();
    let mut timing = TimingManager::new(
        TimingConfig {
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: None,
            keep_alive: Some(Duration::ZERO),
        },
        t0,
    );
    assert!(timing.check_timeouts(t0).is_empty());
    let first = t0 + Duration::from_nanos(1);
    assert_eq!(timing.next_deadline(), Some(first));
    let result = timing.check_timeouts(first);
    assert_eq!(
        result.events,
        [LayerEvent::Timeout(TimeoutEvent::KeepAlive)]
    );
    let next = timing.next_deadline();
    assert!(
        next.is_none_or(|next| next > first),
        "still due after the check: {next:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. LayeredTimeouts on a TimerService with tokio's paused clock
// ---------------------------------------------------------------------------------------------

fn service() -> TimerService {
    TimerService::builder()
        .shards(1)
        .start()
        .expect("inside a runtime")
}

/// Idle only, and exact: these tests pin fire times to the tick (coarse timers have their own
/// tests below).
fn quiet_timing(idle: Duration, now: Instant) -> TimingManager {
    TimingManager::new(
        TimingConfig {
            idle_timeout: idle,
            handshake_timeout: None,
            keep_alive: None,
        },
        now,
    )
    .with_precision(TimeoutEvent::IdleTimeout, Precision::Exact)
}

/// Asserts the virtual clock is at `deadline`, late by at most one tick and tokio's
/// millisecond rounding.
fn assert_fired_at(deadline: Instant, resolution: Duration) {
    let now = Instant::now();
    assert!(now >= deadline, "early by {:?}", deadline - now);
    assert!(
        now <= deadline + resolution + 2 * MS,
        "late by {:?}",
        now - deadline
    );
}

#[tokio::test(start_paused = true)]
async fn layered_rto_expiry_then_idle_timeout_on_virtual_time() {
    let service = service();
    let resolution = service.handle().resolution();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let t0 = timeouts.now();
    let timing = timeouts.add_layer(quiet_timing(Duration::from_secs(5), t0));
    let reliability = timeouts.add_layer(rfc_layer(8));
    assert_eq!(
        timeouts.unified_deadline(),
        Some(t0 + Duration::from_secs(5))
    );
    let sequence = timeouts
        .layer_mut(reliability)
        .unwrap()
        .on_frame_sent(Bytes::from_static(b"hello"), t0);
    assert_eq!(sequence, 0);
    let rto_deadline = t0 + Duration::from_secs(1);
    assert_eq!(timeouts.unified_deadline(), Some(rto_deadline));

    let results = timeouts.next_timeouts().await.unwrap();
    assert_fired_at(rto_deadline, resolution);
    assert_eq!(
        results,
        [TimeoutCheckResult {
            layer: "reliability",
            events: vec![rto_timeout()],
            frames_to_retransmit: vec![RetransmitFrame {
                sequence: 0,
                payload: Bytes::from_static(b"hello"),
                transmission: 2,
            }],
        }]
    );
    // The retransmission is acked 30 ms later: no sample (Karn), nothing in flight, the RTO
    // timer stops; the idle timer (never pushed back) is what is left.
    tokio::time::sleep(30 * MS).await;
    let now = timeouts.now();
    let outcome = timeouts
        .layer_mut(reliability)
        .unwrap()
        .on_ack(ack(1, 0), now);
    assert_eq!(
        outcome,
        AckOutcome {
            newly_acked: 1,
            rtt_sample: None
        }
    );
    let idle_deadline = t0 + Duration::from_secs(5);
    assert_eq!(timeouts.unified_deadline(), Some(idle_deadline));
    let results = timeouts.next_timeouts().await.unwrap();
    assert_fired_at(idle_deadline, resolution);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].layer, "timing");
    assert_eq!(
        results[0].events,
        [LayerEvent::Timeout(TimeoutEvent::IdleTimeout)]
    );
    assert_eq!(timeouts.unified_deadline(), None);
    assert_eq!(
        timeouts
            .layer(timing)
            .unwrap()
            .deadline(TimeoutEvent::IdleTimeout),
        None
    );
}

/// Waits in `next_timeouts` for `by` (as a connection's `select!` over its socket and its
/// timeouts would), expecting nothing to come due.
async fn wait_quietly(timeouts: &mut LayeredTimeouts, by: Duration) {
    if let Ok(results) = tokio::time::timeout(by, timeouts.next_timeouts()).await {
        panic!("nothing should be due: {results:?}");
    }
}

/// One registration per connection, however many layers and deadlines: one connection, at
/// most one live timer. Pushing the unified deadline later 3000 times (acks restarting the RTO
/// timer 10 ms later each time, receives pushing the idle timer back), while the connection
/// waits in `next_timeouts` between packets, never resets the wheel entry, never cascades it
/// and never wakes the connection: the driver moves the entry to the connection's latest
/// deadline when the entry's 64-tick slot comes up, at most once per 200 − 64 ms, never once
/// per push.
#[tokio::test(start_paused = true)]
async fn layered_one_registration_and_postponing_costs_no_wheel_operation_per_push() {
    let service = service();
    let handle = service.handle();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let t0 = timeouts.now();
    let timing = timeouts.add_layer(quiet_timing(Duration::from_secs(5), t0));
    let reliability = timeouts.add_layer(rfc_layer(8));
    assert_eq!(handle.stats().active_connections, 1);
    timeouts
        .layer_mut(reliability)
        .unwrap()
        .on_frame_sent(payload(0), t0);
    let mut baseline = None;
    // Every 10 ms: send frame n + 1, ack frame n (10 ms sample: RTO 200 ms floor), receive a
    // packet. The RTO timer restarts 10 ms later each time, the idle timer likewise.
    for n in 0..3_000u64 {
        wait_quietly(&mut timeouts, 10 * MS).await;
        let now = timeouts.now();
        {
            let mut layer = timeouts.layer_mut(reliability).unwrap();
            assert_eq!(layer.on_frame_sent(payload(n + 1), now), n + 1);
            let outcome = layer.on_ack(ack(n + 1, 0), now);
            assert_eq!(outcome.newly_acked, 1);
            assert_eq!(layer.in_flight(), 1);
        }
        timeouts.layer_mut(timing).unwrap().on_packet_received(now);
        assert_eq!(timeouts.unified_deadline(), Some(now + 200 * MS));
        if n == 10 {
            baseline = Some(handle.stats());
        }
        if n % 100 == 0 {
            let stats = handle.stats();
            assert_eq!(stats.active_connections, 1, "{stats:?}");
            assert!(stats.total_timers <= 1, "{stats:?}");
        }
    }
    wait_quietly(&mut timeouts, 10 * MS).await;
    let baseline = baseline.unwrap();
    let stats = handle.stats();
    assert_eq!(stats.total_timers, 1, "{stats:?}");
    assert_eq!(
        stats.reset, baseline.reset,
        "a later deadline reset the entry: {stats:?}"
    );
    // 2990 pushes over 29.9 s of virtual time: at most one re-filing per 136 ms.
    let refiled =
        (stats.armed - baseline.armed) + (stats.connection_rearms - baseline.connection_rearms);
    assert!(
        refiled <= 29_900 / 136 + 1,
        "{refiled} re-filings: {stats:?}"
    );
    assert!(refiled >= 29_900 / 200, "{refiled} re-filings: {stats:?}");
    assert_eq!(stats.cascades, baseline.cascades, "{stats:?}");
    assert_eq!(stats.processed, baseline.processed, "woken: {stats:?}");
    // A re-filing by the connection itself follows a fire (a wake), never a push.
    assert!(
        stats.armed - baseline.armed <= stats.processed - baseline.processed,
        "{stats:?}"
    );
    // Nothing came due on the way.
    assert_eq!(
        timeouts
            .layer(reliability)
            .unwrap()
            .retransmission()
            .stats()
            .timeouts,
        0
    );
    assert_eq!(timeouts.stats().layers_run, 0);

    // Then the last frame is acked and the connection goes quiet: idle 5 s after the last
    // receive.
    let last_received = timeouts.layer(timing).unwrap().last_received();
    let now = timeouts.now();
    timeouts
        .layer_mut(reliability)
        .unwrap()
        .on_ack(ack(3_001, 0), now);
    let results = timeouts.next_timeouts().await.unwrap();
    assert_fired_at(last_received + Duration::from_secs(5), handle.resolution());
    assert_eq!(
        results[0].events,
        [LayerEvent::Timeout(TimeoutEvent::IdleTimeout)]
    );
    drop(timeouts);
    let stats = handle.stats();
    assert_eq!(stats.active_connections, 0);
    assert_eq!(stats.total_timers, 0);
}

/// A deadline moving earlier while the connection waits elsewhere is picked up by the next
/// wait: the RTO (1 s) of a frame sent under a 1 h idle timer fires on time.
#[tokio::test(start_paused = true)]
async fn layered_an_earlier_deadline_is_followed_by_the_next_wait() {
    let service = service();
    let handle = service.handle();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let t0 = timeouts.now();
    timeouts.add_layer(quiet_timing(Duration::from_secs(3_600), t0));
    let reliability = timeouts.add_layer(rfc_layer(8));
    wait_quietly(&mut timeouts, 100 * MS).await;
    assert_eq!(handle.stats().total_timers, 1);
    let sent = timeouts.now();
    timeouts
        .layer_mut(reliability)
        .unwrap()
        .on_frame_sent(payload(0), sent);
    let results = timeouts.next_timeouts().await.unwrap();
    assert_fired_at(sent + Duration::from_secs(1), handle.resolution());
    assert_eq!(results[0].layer, "reliability");
    assert_eq!(results[0].frames_to_retransmit[0].transmission, 2);
    // The next wait files the entry again, at the backed-off RTO; dropping the connection
    // takes it out.
    wait_quietly(&mut timeouts, 10 * MS).await;
    let stats = handle.stats();
    assert_eq!(stats.total_timers, 1);
    drop(timeouts);
    let after = handle.stats();
    assert_eq!((after.active_connections, after.total_timers), (0, 0));
    assert_eq!(after.cancelled, stats.cancelled + 1);
}

#[tokio::test(start_paused = true)]
async fn layered_next_timeouts_after_shutdown_is_an_error() {
    let service = service();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let t0 = timeouts.now();
    timeouts.add_layer(quiet_timing(Duration::from_secs(5), t0));
    service.shutdown().await;
    assert_eq!(timeouts.next_timeouts().await, Err(Shutdown));
}

/// Counts wake-ups, so a test can poll by hand and see whether it was woken.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `timeouts` once (it must be pending), shuts the service down, and returns how often
/// the poll's waker was woken and what the next poll says.
async fn shut_down_while_waiting(
    service: TimerService,
    timeouts: &mut LayeredTimeouts,
) -> (usize, Poll<Result<Vec<TimeoutCheckResult>, Shutdown>>) {
    let counting = Arc::new(WakeCount::default());
    let waker = Waker::from(Arc::clone(&counting));
    let mut cx = Context::from_waker(&waker);
    assert!(timeouts.poll_timeouts(&mut cx).is_pending());
    tokio::time::sleep(10 * MS).await;
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        0,
        "woken before shutdown"
    );
    service.shutdown().await;
    let woken = counting.0.load(Ordering::SeqCst);
    (woken, timeouts.poll_timeouts(&mut cx))
}

/// A connection already waiting in `next_timeouts` (on a deadline far away) is woken by the
/// shutdown and gets the error.
#[tokio::test(start_paused = true)]
async fn layered_shutdown_wakes_a_waiting_connection() {
    let service = service();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let t0 = timeouts.now();
    timeouts.add_layer(quiet_timing(Duration::from_secs(3_600), t0));
    let (woken, poll) = shut_down_while_waiting(service, &mut timeouts).await;
    assert!(woken > 0, "not woken by the shutdown");
    assert_eq!(poll, Poll::Ready(Err(Shutdown)));
}

/// A connection waiting in `next_timeouts` while no layer has a deadline is still woken by the
/// shutdown (its registration is parked where the drain finds it), so a task parked in
/// `next_timeouts` in a `select!` with its socket gets `Err(Shutdown)`.
#[tokio::test(start_paused = true)]
async fn layered_shutdown_wakes_a_connection_with_no_deadline() {
    let service = service();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    timeouts.add_layer(ReliabilityLayer::new(ReliabilityConfig::default()));
    assert_eq!(timeouts.unified_deadline(), None);
    let (woken, poll) = shut_down_while_waiting(service, &mut timeouts).await;
    assert_eq!(poll, Poll::Ready(Err(Shutdown)));
    assert!(
        woken > 0,
        "a connection waiting with no deadline was not woken by the shutdown"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Precision classes: coarse idle and keep-alive timers
// ---------------------------------------------------------------------------------------------

/// The timing layer splits its deadlines by precision: idle and keep-alive coarse by default,
/// establishment and path validation exact; kinds it does not keep cannot be set.
#[test]
fn timing_reports_coarse_and_exact_deadlines_apart() {
    let t0 = Instant::now();
    let mut timing = TimingManager::new(
        TimingConfig {
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Some(Duration::from_secs(10)),
            keep_alive: Some(Duration::from_secs(15)),
        },
        t0,
    );
    assert_eq!(
        timing.precision(TimeoutEvent::IdleTimeout),
        Precision::Coarse
    );
    assert_eq!(timing.precision(TimeoutEvent::KeepAlive), Precision::Coarse);
    assert_eq!(
        timing.precision(TimeoutEvent::ConnectionTimeout),
        Precision::Exact
    );
    assert_eq!(
        timing.next_deadlines(),
        LayerDeadlines {
            exact: Some(t0 + Duration::from_secs(10)),
            coarse: Some(CoarseDeadline {
                deadline: t0 + Duration::from_secs(15),
                slack: Duration::from_secs(15) / 8,
            }),
        }
    );
    timing.start_path_validation(t0, Duration::from_secs(1));
    assert_eq!(
        timing.next_deadlines().exact,
        Some(t0 + Duration::from_secs(1))
    );
    assert!(timing.set_precision(TimeoutEvent::KeepAlive, Precision::Exact));
    timing.on_established();
    timing.on_path_validated();
    assert_eq!(
        timing.next_deadlines(),
        LayerDeadlines {
            exact: Some(t0 + Duration::from_secs(15)),
            coarse: Some(CoarseDeadline::eighth_of(
                t0 + Duration::from_secs(30),
                Duration::from_secs(30)
            )),
        }
    );
    assert!(!timing.set_precision(TimeoutEvent::RetransmissionTimeout, Precision::Coarse));
    assert_eq!(
        timing.precision(TimeoutEvent::RetransmissionTimeout),
        Precision::Exact
    );
    assert_eq!(timing.next_deadlines().earliest(), timing.next_deadline());
}

/// A coarse idle timeout on a live service fires never early and at most an eighth of the
/// timeout (plus a tick and tokio's millisecond rounding) late; an exact deadline just after it
/// in another layer is not held back by the rounding.
#[tokio::test(start_paused = true)]
async fn layered_coarse_idle_is_never_early_and_never_delays_an_exact_deadline() {
    let service = service();
    let resolution = service.handle().resolution();
    let idle = Duration::from_secs(3);
    for exact_after in [None, Some(10 * MS)] {
        let mut timeouts = LayeredTimeouts::new(service.handle());
        let t0 = timeouts.now();
        let timing = TimingManager::new(
            TimingConfig {
                idle_timeout: idle,
                handshake_timeout: None,
                keep_alive: None,
            },
            t0,
        );
        assert_eq!(
            timing.precision(TimeoutEvent::IdleTimeout),
            Precision::Coarse
        );
        timeouts.add_layer(timing);
        let idle_deadline = t0 + idle;
        let hand = timeouts.add_layer(HandSet::new("hand", None));
        if let Some(after) = exact_after {
            timeouts.layer_mut(hand).unwrap().deadline = Some(idle_deadline + after);
        }
        let results = timeouts.next_timeouts().await.unwrap();
        let fired_at = Instant::now();
        assert!(
            fired_at >= idle_deadline,
            "early by {:?}",
            idle_deadline - fired_at
        );
        assert!(
            fired_at <= idle_deadline + idle / 8 + resolution + 2 * MS,
            "late by {:?}",
            fired_at - idle_deadline
        );
        assert_eq!(
            results[0].events,
            [LayerEvent::Timeout(TimeoutEvent::IdleTimeout)]
        );
        if let Some(after) = exact_after {
            // The exact deadline 10 ms after the idle one fired with it or in its own tick,
            // never at the idle timeout's rounded-up tick.
            assert_fired_at(idle_deadline, resolution + after);
            if results.len() == 1 {
                let results = timeouts.next_timeouts().await.unwrap();
                assert_fired_at(idle_deadline + after, resolution);
                assert_eq!(results[0].layer, "hand");
            } else {
                assert_eq!(results[1].layer, "hand");
            }
        }
    }
}

/// The work saved: a thousand connections whose idle timeouts (3 s, the `simulate` default)
/// run out cost the service's wheel no cascade at all when the timeouts are coarse (rounded to
/// 64 ticks, they stay on level 1 and fire when their slot comes up), and about one each when
/// they are exact (moved down to their tick when their slot comes up).
#[tokio::test(start_paused = true)]
async fn coarse_idle_timeouts_cascade_far_less_than_exact_ones() {
    async fn cascades(precision: Precision) -> u64 {
        let service = service();
        let mut connections = Vec::new();
        for n in 0..1_000u64 {
            let mut timeouts = LayeredTimeouts::new(service.handle());
            let now = timeouts.now();
            timeouts.add_layer(
                TimingManager::new(
                    TimingConfig {
                        idle_timeout: Duration::from_secs(3),
                        handshake_timeout: None,
                        keep_alive: None,
                    },
                    now,
                )
                .with_precision(TimeoutEvent::IdleTimeout, precision),
            );
            connections.push(tokio::spawn(async move {
                let results = timeouts.next_timeouts().await.unwrap();
                assert_eq!(
                    results[0].events,
                    [LayerEvent::Timeout(TimeoutEvent::IdleTimeout)]
                );
            }));
            // Staggered arrivals, so the deadlines fall at every position of the wheel.
            tokio::time::sleep(Duration::from_millis(1 + n % 7)).await;
        }
        for connection in connections {
            connection.await.unwrap();
        }
        service.handle().stats().cascades
    }
    let exact = cascades(Precision::Exact).await;
    let coarse = cascades(Precision::Coarse).await;
    eprintln!("cascades: exact {exact}, coarse {coarse}");
    assert!(
        exact >= 900,
        "exact idle timers cascade once unless due at a slot's start: {exact}"
    );
    assert_eq!(coarse, 0, "coarse {coarse} cascades, exact {exact}");
}

/// The slack comes from the timeout itself, not from how long ago the driver last looked: with
/// the driver asleep for a minute (its only timer an hour away), a 3 s coarse idle timeout still
/// fires at most 375 ms late.
#[tokio::test(start_paused = true)]
async fn coarse_lateness_is_bounded_by_the_timeout_even_after_a_long_quiet_spell() {
    let service = service();
    let handle = service.handle();
    let mut far = handle.sleep(Duration::from_secs(3_600));
    assert!(futures_poll(&mut far).is_pending());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut timeouts = LayeredTimeouts::new(handle.clone());
    let t0 = timeouts.now();
    let idle = Duration::from_secs(3);
    timeouts.add_layer(TimingManager::new(
        TimingConfig {
            idle_timeout: idle,
            handshake_timeout: None,
            keep_alive: None,
        },
        t0,
    ));
    let mut connection = ConnectionTimers::new(1, handle.clone());
    connection
        .register_timer(TimeoutEvent::KeepAlive, idle)
        .unwrap();
    connection
        .set_precision(TimeoutEvent::KeepAlive, Precision::Coarse)
        .unwrap();
    connection
        .register_timer_at(TimeoutEvent::KeepAlive, t0 + idle)
        .unwrap();
    let held = connection.deadline(TimeoutEvent::KeepAlive).unwrap();
    assert!(
        held >= t0 + idle && held <= t0 + idle + idle / 8,
        "{:?}",
        held - t0
    );
    timeouts.next_timeouts().await.unwrap();
    let late = Instant::now() - (t0 + idle);
    assert!(late <= idle / 8 + 2 * MS, "late by {late:?}");
}

fn futures_poll(sleep: &mut ticktock::Sleep) -> Poll<Result<(), Shutdown>> {
    std::pin::Pin::new(sleep).poll(&mut Context::from_waker(Waker::noop()))
}
