//! MLflow's error vocabulary. The codes and their HTTP statuses are part of the public
//! contract: the stock client decides what to do (retry, raise, fall back) from them.

use std::fmt;

/// The subset of MLflow's `ErrorCode` that tandem returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    BadRequest,
    InvalidState,
    InternalError,
    EndpointNotFound,
    NotImplemented,
    TemporarilyUnavailable,
    PermissionDenied,
    DataLoss,
    /// No credentials, or credentials that do not identify anyone (HTTP 401).
    Unauthenticated,
    /// Too many attempts in a short time (HTTP 429).
    RequestLimitExceeded,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::DataLoss => "DATA_LOSS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
        }
    }

    /// The HTTP status MLflow maps this code to (`mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS`).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::ResourceAlreadyExists
            | ErrorCode::BadRequest => 400,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => 404,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::RequestLimitExceeded => 429,
            ErrorCode::NotImplemented => 501,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidState | ErrorCode::InternalError | ErrorCode::DataLoss => 500,
        }
    }

    /// Whether the same request may succeed if sent again unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::TemporarilyUnavailable | ErrorCode::InternalError
        )
    }
}

/// An error as MLflow reports it: a code and a human message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct MlflowError {
    pub code: ErrorCode,
    pub message: String,
    /// The request was refused before it could change anything, so sending it again (to
    /// this region or another) cannot apply it twice. Set only where that is certain: the
    /// front door holds and resends such requests during a failover instead of passing the
    /// error to the client.
    pub unchanged: bool,
}

impl fmt::Display for MlflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl MlflowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MlflowError {
            code,
            message: message.into(),
            unchanged: false,
        }
    }
    /// `TEMPORARILY_UNAVAILABLE` for a request refused before it changed anything (no leader
    /// here, a lease lapsed, a workspace not replicated yet, a switchover draining).
    pub fn unavailable(message: impl Into<String>) -> Self {
        MlflowError {
            unchanged: true,
            ..Self::new(ErrorCode::TemporarilyUnavailable, message)
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

pub type Result<T, E = MlflowError> = std::result::Result<T, E>;
