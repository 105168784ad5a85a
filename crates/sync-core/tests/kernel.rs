//! Property tests of the batch rule alone, with no store: the plans of
//! `sync_core::raw` applied to a `Ledger`.

use proptest::prelude::*;
use sync_core::raw::{Ledger, Plan, append_plan, apply_plan};
use sync_core::{Causality, Event, Limits, NewEvent, NodeId};

const NOW: u64 = 1_000_000;

/// Events written by `nodes` replicas that each append to a few aggregates
/// and now and then take in everything another replica holds, so that the
/// set has causal chains and concurrent edits.
fn history(steps: &[(usize, usize, Option<usize>)], nodes: usize) -> Vec<Event> {
    let ids: Vec<NodeId> = (0..nodes).map(|i| NodeId::from_bytes([i as u8 + 1; 16])).collect();
    let mut replicas: Vec<(Ledger, Vec<Event>)> = (0..nodes).map(|_| (Ledger::default(), Vec::new())).collect();
    let mut all = Vec::new();
    for (step, &(node, aggregate, sync_from)) in steps.iter().enumerate() {
        let node = node % nodes;
        if let Some(from) = sync_from.map(|f| f % nodes).filter(|f| *f != node) {
            let events = replicas[from].1.clone();
            let (ledger, held) = &mut replicas[node];
            let plan = apply_plan(&Limits::default(), events, NOW, ledger).unwrap();
            record(ledger, &plan);
            held.extend(plan.rows);
        }
        let event = NewEvent::new("set", format!("agg-{}", aggregate % 3), format!("{step}"));
        let (ledger, held) = &mut replicas[node];
        let plan = append_plan(ids[node], &Limits::default(), vec![event], NOW + step as u64, ledger).unwrap();
        record(ledger, &plan);
        all.extend(plan.rows.iter().cloned());
        held.extend(plan.rows);
    }
    all
}

fn record(ledger: &mut Ledger, plan: &Plan) {
    for event in &plan.rows {
        ledger.insert(event);
    }
}

/// Applies `events` in batches of the given sizes; answers the ledger, the
/// feed and the concurrent ids.
fn apply_in(events: &[Event], sizes: &[usize]) -> (Ledger, Vec<Event>, Vec<sync_core::EventId>) {
    let (mut ledger, mut feed, mut concurrent) = (Ledger::default(), Vec::new(), Vec::new());
    let mut rest = events;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        let plan = apply_plan(&Limits::default(), batch.to_vec(), NOW, &mut ledger).unwrap();
        record(&mut ledger, &plan);
        concurrent.extend(plan.outcome.concurrent.iter().copied());
        feed.extend(plan.rows);
    }
    (ledger, feed, concurrent)
}

fn state(ledger: &Ledger, events: &[Event]) -> (Vec<Option<sync_core::VectorClock>>, sync_core::VectorClock) {
    let clocks = (0..3).map(|a| ledger.clock(&format!("agg-{a}")).cloned()).collect();
    assert!(events.iter().all(|e| ledger.contains(e.id)));
    (clocks, ledger.version_vector())
}

fn steps() -> impl Strategy<Value = Vec<(usize, usize, Option<usize>)>> {
    proptest::collection::vec((0..4usize, 0..3usize, proptest::option::weighted(0.3, 0..4usize)), 1..40)
}

proptest! {
    #[test]
    fn any_split_of_a_batch_gives_the_same_state(
        steps in steps(),
        sizes in proptest::collection::vec(1..8usize, 1..5),
        repeat in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let mut events = history(&steps, 4);
        // Repeats inside the batch and across batches are duplicates.
        let copies: Vec<Event> = repeat.iter().map(|i| events[i.index(events.len())].clone()).collect();
        events.extend(copies);
        let (whole, whole_feed, _) = apply_in(&events, &[events.len()]);
        let (split, split_feed, _) = apply_in(&events, &sizes);
        prop_assert_eq!(state(&whole, &events), state(&split, &events));
        prop_assert_eq!(whole_feed, split_feed);
    }

    #[test]
    fn local_batches_split_any_way_give_the_same_state(
        aggregates in proptest::collection::vec(0..3usize, 1..30),
        sizes in proptest::collection::vec(1..8usize, 1..5),
    ) {
        let node = NodeId::from_bytes([9; 16]);
        let events: Vec<NewEvent> = aggregates.iter().map(|a| NewEvent::new("set", format!("agg-{a}"), vec![])).collect();
        let run = |sizes: &[usize]| {
            let (mut ledger, mut feed) = (Ledger::default(), Vec::new());
            let mut rest = &events[..];
            let mut sizes = sizes.iter().cycle();
            while !rest.is_empty() {
                let (batch, tail) = rest.split_at((*sizes.next().unwrap()).clamp(1, rest.len()));
                rest = tail;
                let plan = append_plan(node, &Limits::default(), batch.to_vec(), NOW, &mut ledger).unwrap();
                record(&mut ledger, &plan);
                feed.extend(plan.rows);
            }
            (ledger, feed)
        };
        let (whole, whole_feed) = run(&[events.len()]);
        let (split, split_feed) = run(&sizes);
        prop_assert_eq!(state(&whole, &whole_feed), state(&split, &split_feed));
        prop_assert_eq!(&whole_feed, &split_feed);
        // Dense counters, one clock entry per aggregate, strictly rising HLCs.
        for (i, e) in whole_feed.iter().enumerate() {
            prop_assert_eq!(e.origin.counter, i as u64 + 1);
            prop_assert!(i == 0 || whole_feed[i - 1].hlc < e.hlc);
        }
    }

    #[test]
    fn duplicates_never_change_the_bookkeeping(steps in steps(), forged_counter in 1u64..1_000_000) {
        let events = history(&steps, 4);
        let (mut ledger, _, _) = apply_in(&events, &[events.len()]);
        let before = state(&ledger, &events);
        // The same events again, and copies with a forged header.
        let mut again = events.clone();
        for e in &events {
            let mut forged = e.clone();
            forged.origin.counter = forged_counter;
            forged.clock.set(forged.origin.node, forged_counter);
            again.push(forged);
        }
        let plan = apply_plan(&Limits::default(), again.clone(), NOW, &mut ledger).unwrap();
        prop_assert!(plan.rows.is_empty() && plan.clocks.is_empty() && plan.counters.is_empty());
        prop_assert_eq!(plan.outcome.duplicates.len(), again.len());
        record(&mut ledger, &plan);
        prop_assert_eq!(state(&ledger, &events), before);
    }

    #[test]
    fn concurrency_found_equals_the_quadratic_definition(steps in steps(), sizes in proptest::collection::vec(1..8usize, 1..5)) {
        let events = history(&steps, 4);
        let (_, feed, concurrent) = apply_in(&events, &sizes);
        // An event is concurrent when some earlier event of its aggregate
        // in the feed did not happen before it (nor equal it).
        let expected: Vec<_> = feed
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                feed[..*i].iter().any(|f| {
                    f.aggregate_id == e.aggregate_id
                        && !matches!(f.clock.compare(&e.clock), Causality::Before | Causality::Equal)
                })
            })
            .map(|(_, e)| e.id)
            .collect();
        prop_assert_eq!(concurrent, expected);
    }
}

#[test]
fn one_invalid_event_refuses_the_whole_batch() {
    let node = NodeId::random();
    let mut ledger = Ledger::default();
    let good = NewEvent::new("k", "agg", vec![]);
    let bad = NewEvent::new("", "agg", vec![]);
    let err = append_plan(node, &Limits::default(), vec![good.clone(), bad], NOW, &mut ledger).unwrap_err();
    assert_eq!(err.code(), sync_core::ErrorCode::InvalidInput);
    let plan = append_plan(node, &Limits::default(), vec![good], NOW, &mut ledger).unwrap();
    assert_eq!(plan.rows[0].origin.counter, 1, "the refused batch used up no counter");
}

#[test]
fn remote_events_from_far_in_the_future_are_refused_at_the_given_time() {
    let node = NodeId::random();
    let mut ledger = Ledger::default();
    let plan = append_plan(node, &Limits::default(), vec![NewEvent::new("k", "a", vec![])], NOW, &mut ledger).unwrap();
    let limits = Limits { max_clock_skew_ms: 10, ..Limits::default() };
    let err = apply_plan(&limits, plan.rows.clone(), NOW - 11, &mut Ledger::default()).unwrap_err();
    assert_eq!(err.code(), sync_core::ErrorCode::InvalidInput);
    assert!(apply_plan(&limits, plan.rows, NOW - 10, &mut Ledger::default()).is_ok());
}
