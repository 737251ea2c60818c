//! A connection of its own for a task that sends one statement at a time for many callers (the
//! batch writer, the access reader): no pool to wait on, and none of the round trip with which
//! sqlx tests a connection given back to its pool. Lost, it is opened again at the next use;
//! refused, the task answers "unavailable" at once for a while instead of trying again for each
//! batch, so that callers fail fast while the database is away.
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};
use sqlx::ConnectOptions;
use std::future::Future;
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

/// What such a task holds: a plain connection (the batch writer), or one that also listens
/// (the access reader's, `postgres_access`), with whatever it keeps that is only good while
/// that connection lasts.
pub(crate) trait Link: Sized + Send {
    fn open(opts: &PgConnectOptions) -> impl Future<Output = Result<Self, sqlx::Error>> + Send;
}

impl Link for PgConnection {
    fn open(opts: &PgConnectOptions) -> impl Future<Output = Result<Self, sqlx::Error>> + Send {
        opts.connect()
    }
}

pub(crate) struct Dedicated<C = PgConnection> {
    /// Who holds it, for messages: "the organization batch writer".
    who: &'static str,
    opts: PgConnectOptions,
    bounds: Bounds,
    conn: Option<C>,
    /// After a refused connect: until when to answer with its message.
    down_until: Option<(Instant, String)>,
}

impl<C: Link> Dedicated<C> {
    pub(crate) fn new(who: &'static str, opts: PgConnectOptions, bounds: Bounds) -> Self {
        Self {
            who,
            opts,
            bounds,
            conn: None,
            down_until: None,
        }
    }

    /// Whether a connection is open now (none is opened).
    pub(crate) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection, opened if need be; the reason there is none otherwise.
    pub(crate) async fn get(&mut self) -> Result<&mut C, String> {
        if let Some((until, msg)) = &self.down_until {
            if Instant::now() < *until {
                return Err(msg.clone());
            }
            self.down_until = None;
        }
        if self.conn.is_none() {
            let msg = match tokio::time::timeout(self.bounds.acquire_timeout, C::open(&self.opts))
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
    /// statement's own (`ends_the_session`), or no answer in time, drops the connection (and
    /// what was kept with it).
    /// `None`: no answer in time.
    pub(crate) async fn run<T, F>(&mut self, f: F) -> Result<Option<Result<T, sqlx::Error>>, String>
    where
        F: AsyncFnOnce(&mut C) -> Result<T, sqlx::Error>,
    {
        let wait = self.bounds.client_wait();
        let who = self.who;
        let c = self.get().await?;
        let answer = tokio::time::timeout(wait, f(c)).await.ok();
        match &answer {
            Some(Ok(_)) => {}
            Some(Err(e)) if !ends_the_session(e) => {}
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

/// Whether a failure leaves the connection unusable: any but an error of the statement itself.
/// PostgreSQL ends a session with an error of severity FATAL (`pg_terminate_backend`, a server
/// shutting down): an error "from the database", but the next statement would find the
/// connection closed.
fn ends_the_session(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => true,
    }
}
