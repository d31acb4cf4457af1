//! Group commit: batches that reach storage while a transaction is being committed share the
//! next transaction.
//!
//! Every transaction pays a fixed price whatever it carries: its BEGIN and COMMIT, a
//! handful of statements, and on SQLite the single writer's turn. One transaction per submitted batch makes many small batches pay that many times
//! over; here each committer takes every batch that is waiting, writes them in one
//! transaction (still one compare-and-set per task, still every posting balanced) and hands
//! each batch back its own results. Durability is unchanged: no batch is answered before the
//! transaction that holds it has committed.
//!
//! If a shared transaction fails, each of its batches is retried alone, so one batch that
//! storage refuses cannot fail the others.
//!
//! The engine uses it on SQLite, where it doubles batch-of-one throughput (one writer at a
//! time means batches queue anyway; here they queue in memory and share the commit).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::fsm::TaskState;
use crate::store::{Backend, Inserted, NewTask, Store, StoreError, Transition};

/// What [`Store::create_and_apply`] answers: one `Inserted` per task, one `moved` per
/// transition.
pub type Created = (Vec<Inserted>, Vec<bool>);

/// Tasks per shared transaction at most; beyond this a group waits for the next one, so a
/// transaction's size (and the latency of the first batch in it) stays bounded.
const MAX_GROUP_TASKS: usize = 2_000;

struct Request {
    tasks: Vec<NewTask>,
    transitions: Vec<Transition>,
    reply: oneshot::Sender<Result<Created, StoreError>>,
}

/// The queue in front of the committers; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Request>,
}

impl GroupCommit {
    /// Starts the committers on the current runtime: one for SQLite, which allows one
    /// writer at a time (a second would only queue inside the database); two elsewhere, so
    /// one collects the next group while the other waits for its flush.
    pub fn start(store: Store) -> GroupCommit {
        let committers = match store.backend() {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        };
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers {
            tokio::spawn(run(store.clone(), rx.clone()));
        }
        GroupCommit { queue }
    }

    /// Creates `tasks` and applies `transitions` (to tasks this call created), in a
    /// transaction that may carry other batches too.
    pub async fn create_and_apply(
        &self,
        tasks: Vec<NewTask>,
        transitions: Vec<Transition>,
    ) -> Result<Created, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request {
                tasks,
                transitions,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(store: Store, rx: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>) {
    loop {
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut size = first.tasks.len();
            let mut group = vec![first];
            while size < MAX_GROUP_TASKS {
                match rx.try_recv() {
                    Ok(r) => {
                        size += r.tasks.len();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit(&store, group).await;
    }
}

async fn commit(store: &Store, group: Vec<Request>) {
    if group.len() == 1 {
        for r in group {
            let out = store.create_and_apply(&r.tasks, &r.transitions).await;
            let _ = r.reply.send(out);
        }
        return;
    }
    let tasks: Vec<NewTask> = group.iter().flat_map(|r| r.tasks.clone()).collect();
    let transitions: Vec<Transition> = group.iter().flat_map(|r| r.transitions.clone()).collect();
    match store.create_and_apply(&tasks, &transitions).await {
        Ok((inserted, moved)) => split(group, &transitions, inserted, moved),
        Err(e) => {
            tracing::warn!(batches = group.len(), error = %e, "shared commit failed; committing each batch alone");
            for r in group {
                let out = store.create_and_apply(&r.tasks, &r.transitions).await;
                let _ = r.reply.send(out);
            }
        }
    }
}

/// Hands each batch its part of the shared answer. A batch that repeats a key another batch
/// of the same group created sees that task as it stands after the transaction, not the
/// INIT row the insert found.
fn split(
    group: Vec<Request>,
    transitions: &[Transition],
    inserted: Vec<Inserted>,
    moved: Vec<bool>,
) {
    let after: HashMap<&str, &Transition> = transitions
        .iter()
        .zip(&moved)
        .filter(|(_, m)| **m)
        .map(|(t, _)| (t.task_id.as_str(), t))
        .collect();
    let mut inserted = inserted.into_iter();
    let mut moved = moved.into_iter();
    for r in group {
        let ins: Vec<Inserted> = inserted
            .by_ref()
            .take(r.tasks.len())
            .map(|i| match i {
                Inserted::Existing(mut s) if s.state == TaskState::Init => {
                    if let Some(t) = after.get(s.task_id.as_str()) {
                        s.state = t.to;
                        s.reason_code = t.reason_code.clone();
                        s.detail = t.detail.clone();
                    }
                    Inserted::Existing(s)
                }
                other => other,
            })
            .collect();
        let mv: Vec<bool> = moved.by_ref().take(r.transitions.len()).collect();
        let _ = r.reply.send(Ok((ins, mv)));
    }
}
