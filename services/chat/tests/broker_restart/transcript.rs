//! The final check: what every member was shown against what every sayer
//! was told.

use std::collections::{BTreeMap, BTreeSet};

use crate::person::{Outcome, Person, Shown};

/// Holds what every member was shown against what every sayer was told, and
/// returns the room's lines by sequence number as the members saw them:
///
/// - per member, across its sessions: lines and Gaps cover each sequence
///   number once, in order, from where it joined to where it left (or
///   `last_seq`, for members still in);
/// - across members: a sequence number holds one line, and every line
///   1..=`last_seq` was shown to someone;
/// - per sayer: an acknowledged line holds its sequence number, and a line
///   it was told failed appears nowhere; no line is shown that nobody said;
/// - nobody was left in doubt (a line neither confirmed nor refused).
pub(crate) fn check_transcripts(
    people: &[&Person],
    last_seq: u64,
) -> BTreeMap<u64, (String, String)> {
    let mut transcript: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for person in people {
        let mut next = person.first_seq();
        for (session, record) in person.records().enumerate() {
            for shown in &record.shown {
                match shown {
                    Shown::Line { seq, nick, text } => {
                        assert_eq!(
                            *seq, next,
                            "{} (session {session}) was shown {seq} {text:?} where {next} was due",
                            person.nick
                        );
                        let line = (nick.clone(), text.clone());
                        let held = transcript.entry(*seq).or_insert_with(|| line.clone());
                        assert_eq!(*held, line, "seq {seq} differs for {}", person.nick);
                        next = seq + 1;
                    }
                    Shown::Gap { from, to } => {
                        assert_eq!(*from, next, "{}'s gap {from}-{to}", person.nick);
                        next = to + 1;
                    }
                    _ => {}
                }
            }
        }
        if person.is_in() {
            assert_eq!(next, last_seq + 1, "{} did not get every line", person.nick);
        }
    }
    let seqs: Vec<u64> = transcript.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=last_seq).collect::<Vec<_>>(),
        "lines nobody was shown"
    );

    let mut where_said: BTreeMap<&str, u64> = BTreeMap::new();
    for (seq, (_, text)) in &transcript {
        let again = where_said.insert(text, *seq);
        assert_eq!(again, None, "{text:?} stored twice");
    }
    let mut told = BTreeSet::new();
    for person in people {
        for said in &person.said {
            told.insert(said.text.as_str());
            let stored = where_said.get(said.text.as_str());
            match &said.outcome {
                Outcome::Acked(seq) => assert_eq!(
                    transcript.get(seq),
                    Some(&(person.nick.clone(), said.text.clone())),
                    "{}'s acknowledged {:?}",
                    person.nick,
                    said.text
                ),
                Outcome::Refused(why) => assert_eq!(
                    stored, None,
                    "{}'s {:?} was refused ({why}) yet delivered",
                    person.nick, said.text
                ),
                Outcome::InDoubt(why) => {
                    panic!(
                        "{} was left in doubt about {:?}: {why}",
                        person.nick, said.text
                    )
                }
            }
        }
    }
    for text in where_said.keys() {
        assert!(told.contains(text), "{text:?} was shown but nobody said it");
    }
    transcript
}
