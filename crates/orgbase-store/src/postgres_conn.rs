//! A connection of its own for a task that sends one statement at a time for many callers (the
//! batch writer, the access reader): no pool to wait on, and none of the round trip with which
//! sqlx tests a connection given back to its pool. Lost, it is opened again at the next use;
//! refused, the task answers "unavailable" at once for a while instead of trying again for each
//! batch, so that callers fail fast while the database is away.
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;
use tokio::time::Instant;

use super::Bounds;

/// The planner settings of these connections: no sequential scans, no JIT compilation. Their
/// statements touch at most a batch of rows, each by its primary key; but the plan PostgreSQL
/// keeps for a statement is made from the tables' statistics, and without them (autovacuum off,
/// or tables just loaded) it read whole tables for every batch: the settings batch hashed all of
/// `organizations` against its values (with the benchmark's 1,000 organizations, about an eighth
/// of PostgreSQL's work per change, growing with the table), and the access reader filtered every
/// row of `organizations` against the batch's ids and hashed every wallet. JIT is off because a
/// scan PostgreSQL must still make (the batch's look at `webhook_endpoints`, which has no other
/// path) is costed as disabled, far above `jit_above_cost`: compiling the statement took 200-300
/// ms a batch.
pub(crate) const INDEX_ONLY: [(&str, &str); 2] = [("enable_seqscan", "off"), ("jit", "off")];

pub(crate) struct Dedicated {
    /// Who holds it, for messages: "the organization batch writer".
    who: &'static str,
    opts: PgConnectOptions,
    bounds: Bounds,
    conn: Option<PgConnection>,
    /// After a refused connect: until when to answer with its message.
    down_until: Option<(Instant, String)>,
}

impl Dedicated {
    pub(crate) fn new(who: &'static str, opts: PgConnectOptions, bounds: Bounds) -> Self {
        Self {
            who,
            opts,
            bounds,
            conn: None,
            down_until: None,
        }
    }

    /// The connection, opened if need be; the reason there is none otherwise.
    pub(crate) async fn get(&mut self) -> Result<&mut PgConnection, String> {
        if let Some((until, msg)) = &self.down_until {
            if Instant::now() < *until {
                return Err(msg.clone());
            }
            self.down_until = None;
        }
        if self.conn.is_none() {
            let msg = match tokio::time::timeout(self.bounds.acquire_timeout, self.opts.connect())
                .await
            {
                Ok(Ok(c)) => {
                    self.conn = Some(c);
                    None
                }
                Ok(Err(e)) => Some(format!("{} could not connect: {e}", self.who)),
                Err(_) => Some(format!("{} could not connect in time", self.who)),
            };
            if let Some(msg) = msg {
                self.down_until = Some((Instant::now() + self.bounds.acquire_timeout, msg.clone()));
                return Err(msg);
            }
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Runs `f` on the connection within the client's wait; a failure other than the
    /// statement's own (`sqlx::Error::Database`), or no answer in time, drops the connection.
    /// `None`: no answer in time.
    pub(crate) async fn run<T, F>(&mut self, f: F) -> Result<Option<Result<T, sqlx::Error>>, String>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    {
        let wait = self.bounds.client_wait();
        let who = self.who;
        let c = self.get().await?;
        let answer = tokio::time::timeout(wait, f(c)).await.ok();
        match &answer {
            Some(Ok(_)) | Some(Err(sqlx::Error::Database(_))) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "{who} lost its connection");
                self.conn = None;
            }
            None => {
                tracing::warn!("{who}'s connection stopped answering");
                self.conn = None;
            }
        }
        Ok(answer)
    }
}
