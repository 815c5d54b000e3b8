//! The send buffer's unit tests: sequencing, loss detection, backoff, recovery.
use super::*;

const REO: Duration = Duration::from_millis(1);

fn push<const S: usize>(b: &mut SendBuffer<64, S>, n: usize, byte: u8) -> Option<i64> {
    b.push(Uuid([byte; 16]), PayloadType::Output, 0, n, |d| {
        d.fill(byte);
        Some(n)
    })
}

#[test]
fn sequence_numbers_and_in_order_free() {
    let mut b = SendBuffer::<64, 4>::new();
    assert_eq!(push(&mut b, 20, 1), Some(0));
    assert_eq!(push(&mut b, 20, 2), Some(1));
    assert_eq!(push(&mut b, 20, 3), Some(2));
    assert_eq!(b.unacked_bytes(), 60);
    // 4 bytes left at the end, none before the head.
    assert_eq!(push(&mut b, 20, 4), None);
    assert_eq!(b.room(20), 4);
    // Acking the middle one frees nothing yet but counts.
    assert_eq!(
        b.on_ack(1, Uuid([2; 16]), Instant::ZERO, REO, None),
        AckOutcome::New(None)
    );
    assert_eq!(b.unacked_bytes(), 40);
    assert_eq!(
        b.on_ack(1, Uuid([2; 16]), Instant::ZERO, REO, None),
        AckOutcome::Duplicate
    );
    assert_eq!(push(&mut b, 20, 4), None);
    // Wrong id: ignored.
    assert_eq!(
        b.on_ack(0, Uuid([9; 16]), Instant::ZERO, REO, None),
        AckOutcome::Unknown
    );
    assert!(matches!(
        b.on_ack(0, Uuid([1; 16]), Instant::ZERO, REO, None),
        AckOutcome::New(_)
    ));
    // 0 and 1 freed: 40 bytes before the head now.
    assert_eq!(push(&mut b, 30, 4), Some(3));
    assert_eq!(b.payload(b.get(3).unwrap()), &[4u8; 30][..]);
    assert_eq!(b.payload(b.get(2).unwrap()), &[3u8; 20][..]);
    assert_eq!(b.next_seq(), 4);
}

#[test]
fn karn_samples_only_single_transmissions() {
    let mut b = SendBuffer::<64, 4>::new();
    push(&mut b, 1, 1);
    push(&mut b, 1, 2);
    b.mark_sent(0, Instant::from_millis(10));
    b.mark_sent(1, Instant::from_millis(10));
    b.mark_sent(1, Instant::from_millis(300));
    assert_eq!(
        b.on_ack(0, Uuid([1; 16]), Instant::from_millis(50), REO, None),
        AckOutcome::New(Some(Duration::from_millis(40)))
    );
    assert_eq!(
        b.on_ack(1, Uuid([2; 16]), Instant::from_millis(350), REO, None),
        AckOutcome::New(None)
    );
    assert!(b.is_empty());
}

#[test]
fn a_later_delivery_finds_a_loss_at_once() {
    let mut b = SendBuffer::<64, 4>::new();
    for k in 0..4 {
        push(&mut b, 1, k);
        b.mark_sent(k as i64, Instant::from_millis(k as u64 * 2));
    }
    let rto = Duration::from_millis(200);
    // 1 (sent at 2 ms) arrives: 0 (sent at 0 ms) was sent before it, beyond the 1 ms
    // allowance, so it is lost; 2 and 3 were sent after and may still be on their way.
    b.on_ack(1, Uuid([1; 16]), Instant::from_millis(30), REO, None);
    assert_eq!(b.next_due(Instant::from_millis(30), rto, 4), Some(0));
    b.mark_sent(0, Instant::from_millis(30));
    assert_eq!(b.next_due(Instant::from_millis(30), rto, 4), None);
    // An acknowledgement out of order: the path loses, every message runs on its own timer
    // (2's, sent at 4 ms, comes first; 0's copy was found lost, not timed out: not doubled).
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(204)));
    assert_eq!(b.get(0).unwrap().backoff, 0);
    // 3 arrives, 2 did not: 2 is lost too; 0 went out again after 3, so it is not.
    b.on_ack(3, Uuid([3; 16]), Instant::from_millis(36), REO, None);
    assert_eq!(b.next_due(Instant::from_millis(36), rto, 4), Some(2));
    b.mark_sent(2, Instant::from_millis(36));
    assert_eq!(b.next_due(Instant::from_millis(36), rto, 4), None);
    assert_eq!(b.get(0).unwrap().transmissions, 2);
}

#[test]
fn within_the_reordering_allowance_nothing_is_lost() {
    let mut b = SendBuffer::<64, 4>::new();
    for k in 0..2 {
        push(&mut b, 1, k);
    }
    b.mark_sent(0, Instant::from_millis(10));
    b.mark_sent(1, Instant::from_millis(12));
    let rto = Duration::from_millis(200);
    b.on_ack(
        1,
        Uuid([1; 16]),
        Instant::from_millis(40),
        Duration::from_millis(5),
        None,
    );
    assert_eq!(b.next_due(Instant::from_millis(40), rto, 4), None);
    // A copy's acknowledgement says nothing about when it was sent (Karn): no loss either.
    let mut b = SendBuffer::<64, 4>::new();
    for k in 0..2 {
        push(&mut b, 1, k);
    }
    b.mark_sent(0, Instant::from_millis(10));
    b.mark_sent(1, Instant::from_millis(10));
    b.mark_sent(1, Instant::from_millis(300));
    let min_rtt = Some(Duration::from_millis(20));
    b.on_ack(1, Uuid([1; 16]), Instant::from_millis(301), REO, min_rtt);
    // (Its own timer, 1 s here, has not expired either.)
    let long = Duration::from_millis(1000);
    assert_eq!(b.next_due(Instant::from_millis(301), long, 4), None);
}

#[test]
fn acknowledgements_hold_back_the_timeouts_of_queued_messages() {
    let mut b = SendBuffer::<64, 4>::new();
    for k in 0..3 {
        push(&mut b, 1, k);
        b.mark_sent(k as i64, Instant::ZERO);
    }
    let rto = Duration::from_millis(200);
    // 0 is acknowledged late (it waited in a queue); 1 and 2 are still queued behind it.
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(190), REO, None);
    assert_eq!(b.next_due(Instant::from_millis(250), rto, 4), None);
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(390)));
    // A repeated acknowledgement also shows the peer alive.
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(300), REO, None);
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(500)));
    // Silence for a whole RTO: the oldest goes out as a probe.
    assert_eq!(b.next_due(Instant::from_millis(500), rto, 4), Some(1));
    b.mark_sent(1, Instant::from_millis(500));
    assert_eq!(b.next_due(Instant::from_millis(500), rto, 4), None);
}

#[test]
fn timeouts_back_off_until_a_new_transport() {
    let mut b = SendBuffer::<64, 4>::new();
    push(&mut b, 1, 0);
    let rto = Duration::from_millis(200);
    let mut t = 0;
    b.mark_sent(0, Instant::from_millis(t));
    for k in 1..=6u32 {
        let next = b.next_deadline(rto, 4).unwrap().total_millis();
        let doublings = (k - 1).min(u32::from(MAX_BACKOFF));
        assert_eq!(next - t, 200 << doublings, "timeout {k}");
        assert_eq!(b.next_due(Instant::from_millis(next - 1), rto, 4), None);
        assert_eq!(b.next_due(Instant::from_millis(next), rto, 4), Some(0));
        t = next;
        b.mark_sent(0, Instant::from_millis(t));
    }
    b.mark_all_unsent();
    assert_eq!(b.next_due(Instant::from_millis(t), rto, 4), Some(0));
    b.mark_sent(0, Instant::from_millis(t));
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(t + 200)));
}

#[test]
fn new_messages_inherit_the_backoff_until_an_acknowledgement() {
    let mut b = SendBuffer::<64, 4>::new();
    let rto = Duration::from_millis(200);
    push(&mut b, 1, 0);
    push(&mut b, 1, 1);
    b.mark_sent(0, Instant::ZERO);
    b.mark_sent(0, Instant::from_millis(200));
    // Sent after a silent timeout: doubled from the start.
    b.mark_sent(1, Instant::from_millis(300));
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(600)));
    // Any acknowledgement ends the doublings, of the messages in flight too.
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(310), REO, None);
    assert_eq!(b.next_deadline(rto, 4), Some(Instant::from_millis(510)));
    push(&mut b, 1, 2);
    b.mark_sent(2, Instant::from_millis(320));
    assert_eq!(b.get(2).unwrap().backoff, 0);
}

#[test]
fn a_probe_first_then_the_others_clocked_by_acknowledgements() {
    let mut b = SendBuffer::<64, 8>::new();
    for k in 0..5 {
        push(&mut b, 1, k);
    }
    let rto = Duration::from_millis(200);
    for s in 0..5 {
        assert_eq!(b.next_due(Instant::ZERO, rto, 8), Some(s));
        b.mark_sent(s, Instant::from_millis(s as u64));
    }
    assert_eq!(b.next_due(Instant::from_millis(100), rto, 8), None);
    assert_eq!(b.next_deadline(rto, 8), Some(Instant::from_millis(200)));
    // The first timeout: the oldest goes out alone, as a probe...
    assert_eq!(b.next_due(Instant::from_millis(200), rto, 8), Some(0));
    b.mark_sent(0, Instant::from_millis(200));
    // ...and the others, past their timeouts, wait for an acknowledgement.
    assert_eq!(b.next_due(Instant::from_millis(300), rto, 8), None);
    assert_eq!(b.next_deadline(rto, 8), Some(Instant::from_millis(600)));
    // Silence: only the probe repeats, its timeout doubled again.
    assert_eq!(b.next_due(Instant::from_millis(600), rto, 8), Some(0));
    b.mark_sent(0, Instant::from_millis(600));
    assert_eq!(b.next_deadline(rto, 8), Some(Instant::from_millis(1400)));
    // The probe is answered a round trip later (the peer had dropped the rest): two more
    // go at once.
    let min_rtt = Some(Duration::from_millis(20));
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(650), REO, min_rtt);
    for s in [1, 2] {
        assert_eq!(b.next_due(Instant::from_millis(650), rto, 8), Some(s));
        b.mark_sent(s, Instant::from_millis(650));
    }
    assert_eq!(b.next_due(Instant::from_millis(650), rto, 8), None);
    // Each copy acknowledged lets two more go: 3 and 4.
    b.on_ack(1, Uuid([1; 16]), Instant::from_millis(680), REO, min_rtt);
    for s in [3, 4] {
        assert_eq!(b.next_due(Instant::from_millis(680), rto, 8), Some(s));
        b.mark_sent(s, Instant::from_millis(680));
    }
    assert_eq!(b.next_due(Instant::from_millis(680), rto, 8), None);
    // A message sent once gets through: the recovery is over, a timeout probes again.
    push(&mut b, 1, 5);
    b.mark_sent(5, Instant::from_millis(690));
    b.on_ack(5, Uuid([5; 16]), Instant::from_millis(700), REO, min_rtt);
    for s in 2..=4 {
        b.on_ack(
            s,
            Uuid([s as u8; 16]),
            Instant::from_millis(700),
            REO,
            min_rtt,
        );
    }
    assert!(b.is_empty());
}

#[test]
fn a_copy_acknowledged_too_soon_ends_the_recovery() {
    let mut b = SendBuffer::<64, 8>::new();
    for k in 0..4 {
        push(&mut b, 1, k);
        b.mark_sent(k as i64, Instant::ZERO);
    }
    let rto = Duration::from_millis(200);
    let min_rtt = Some(Duration::from_millis(20));
    // The first timeout sends the probe; its first transmission was only queued and its
    // acknowledgement comes 5 ms after the copy went out, less than any round trip.
    assert_eq!(b.next_due(Instant::from_millis(200), rto, 8), Some(0));
    b.mark_sent(0, Instant::from_millis(200));
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(205), REO, min_rtt);
    // Nothing else goes out: the others' acknowledgements are on their way too.
    assert_eq!(b.next_due(Instant::from_millis(205), rto, 8), None);
    assert_eq!(b.next_deadline(rto, 8), Some(Instant::from_millis(405)));
}

#[test]
fn nothing_goes_out_beyond_what_the_peer_can_hold() {
    let mut b = SendBuffer::<64, 4>::new();
    for k in 0..4 {
        push(&mut b, 1, k);
    }
    let rto = Duration::from_millis(200);
    // Two may be in flight past the oldest unacknowledged one... (ahead 2: seq 0 and 1)
    assert_eq!(b.next_due(Instant::ZERO, rto, 2), Some(0));
    b.mark_sent(0, Instant::ZERO);
    assert_eq!(b.next_due(Instant::ZERO, rto, 2), Some(1));
    b.mark_sent(1, Instant::ZERO);
    assert_eq!(b.next_due(Instant::ZERO, rto, 2), None);
    // ...and the deadline is that of those two, not of a held one.
    assert_eq!(b.next_deadline(rto, 2), Some(Instant::from_millis(200)));
    // 1 is acknowledged, 0 is not: the peer holds 1, so 2 still waits.
    b.on_ack(1, Uuid([1; 16]), Instant::from_millis(5), REO, None);
    assert_eq!(b.next_due(Instant::from_millis(5), rto, 2), None);
    // 0 acknowledged: the limit moves past 2 and 3.
    b.on_ack(0, Uuid([0; 16]), Instant::from_millis(6), REO, None);
    assert_eq!(b.next_due(Instant::from_millis(6), rto, 2), Some(2));
    b.mark_sent(2, Instant::from_millis(6));
    assert_eq!(b.next_due(Instant::from_millis(6), rto, 2), Some(3));
}
