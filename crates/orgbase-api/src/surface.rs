//! Which API a request belongs to: the native one, or one of the two compatible ones. Layers that
//! answer before a handler does (the idempotency layer, the request deadline) answer in the
//! surface's own shape.
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The route whose credential travels in the query string.
pub const QUERY_TOKEN_ROUTE: &str = "/api/v2/updateOrganization";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// Problem details.
    Native,
    /// `{success: false, message}`, as the partner settings document answers.
    PartnerSettings,
    /// `{data: null, errors: [{error, message}]}`, as the properties document answers.
    Properties,
}

impl Surface {
    pub fn of(path: &str) -> Self {
        if path == QUERY_TOKEN_ROUTE {
            Surface::PartnerSettings
        } else if path.starts_with("/v1/orgs/") {
            Surface::Properties
        } else {
            Surface::Native
        }
    }
}

/// An error in the surface's own shape.
pub fn error(surface: Surface, e: ApiError) -> Response {
    match surface {
        Surface::Native => e.into_response(),
        Surface::PartnerSettings => crate::compat::partner_settings::refuse_error(e),
        Surface::Properties => crate::compat::properties::one_error(e),
    }
}

/// Answers a request that is not done within the deadline with 503 `request_timeout` (and
/// `Retry-After`), in its surface's shape. The handler's future is dropped; what it had handed
/// to the store finishes on its own (writes run detached), and a keyed POST's work runs to its
/// end on a task of its own, which settles its key.
///
/// A tower layer rather than a middleware function, and its timer made only when the request
/// is not done at its first poll: a request answered at once (`/healthz`, a cached read) costs
/// no timer and no boxed `Next` (together 9 % of `/healthz`'s throughput, measured).
#[derive(Clone, Copy)]
pub struct DeadlineLayer(pub std::time::Duration);

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            deadline: self.0,
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    deadline: std::time::Duration,
}

impl<S> tower::Service<axum::extract::Request> for Deadline<S>
where
    S: tower::Service<
        axum::extract::Request,
        Response = Response,
        Error = std::convert::Infallible,
    >,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let path = req.uri().path();
        // An upload's time is mostly the client sending its body (up to the upload limit, on
        // whatever link it has): a deadline would cut slow links off. Its own work is bounded
        // by the image limits and the database's.
        let deadline = (!path.ends_with("/upload-avatar"))
            .then(|| tokio::time::Instant::now() + self.deadline);
        let surface = Surface::of(path);
        DeadlineFuture {
            inner: Box::pin(self.inner.call(req)),
            deadline,
            timer: None,
            surface,
        }
    }
}

pub struct DeadlineFuture<F> {
    inner: std::pin::Pin<Box<F>>,
    deadline: Option<tokio::time::Instant>,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    surface: Surface,
}

impl<F> std::future::Future for DeadlineFuture<F>
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if let Poll::Ready(res) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(res);
        }
        let Some(deadline) = self.deadline else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(error(self.surface, ApiError::DeadlineExceeded))),
            Poll::Pending => Poll::Pending,
        }
    }
}
