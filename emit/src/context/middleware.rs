//! The actix-web middleware and the `RequestContext` extractor.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use event_model::context::{task_scope, DeferredContext};
use event_model::Tracker;

use super::{ContextConfig, RequestContext};

/// The name under which the request context is entered on the tracker.
pub const REQUEST_CONTEXT_NAME: &str = "edx.request";

/// Computes each request's [`RequestContext`], stores it in the request extensions,
/// and runs the rest of the request inside [`task_scope`] with the context entered
/// as `edx.request` on the tracker, so `tracker.emit(…)` in handlers carries it.
///
/// The tracker should keep its contexts in an
/// [`event_model::context::TaskStore`]: each request then has its own contexts,
/// and concurrent requests never see each other's. The context is entered while the
/// handler runs; a response body streamed afterwards is outside it.
#[derive(Clone)]
pub struct RequestContextLayer {
    config: Arc<ContextConfig>,
    tracker: Arc<Tracker>,
}

impl RequestContextLayer {
    pub fn new(config: Arc<ContextConfig>, tracker: Arc<Tracker>) -> Self {
        RequestContextLayer { config, tracker }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestContextLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestContextMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestContextMiddleware { service: Rc::new(service), config: self.config.clone(), tracker: self.tracker.clone() }))
    }
}

/// The service [`RequestContextLayer`] wraps around the app.
pub struct RequestContextMiddleware<S> {
    service: Rc<S>,
    config: Arc<ContextConfig>,
    tracker: Arc<Tracker>,
}

impl<S, B> Service<ServiceRequest> for RequestContextMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let context = Arc::new(RequestContext::from_request(req.request(), &self.config));
        req.extensions_mut().insert(context.clone());
        let service = self.service.clone();
        let tracker = self.tracker.clone();
        Box::pin(task_scope(async move {
            // Built only if the handler emits: ingest handlers write the context
            // themselves (`RequestContext::to_json`) and never emit.
            let entered: DeferredContext = Arc::new(move || context.to_fields());
            // Exited when the handler is done (needed for a tracker whose store is not
            // per task; with a TaskStore the scope ends with the request anyway).
            let _guard = match tracker.context_deferred(REQUEST_CONTEXT_NAME, entered) {
                Ok(guard) => Some(guard),
                Err(e) => {
                    tracing::warn!(error = %e, "the request context could not be entered");
                    None
                }
            };
            service.call(req).await
        }))
    }
}

/// Handlers take the context as an argument; it requires [`RequestContextLayer`].
impl FromRequest for RequestContext {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Arc<RequestContext>>().map(|context| RequestContext::clone(context)).ok_or_else(|| {
            actix_web::error::ErrorInternalServerError("the request context middleware (RequestContextLayer) is not installed")
        }))
    }
}
