//! Who is asking: HTTP basic (argon2id passwords) and bearer tokens, checked against the
//! `_access` workspace's state, kept in memory. See docs/design/access.md.
//!
//! Architecture invariant: this module turns credentials into a [`Caller`] and answers
//! "may this caller take this action at this scope"; it knows no route and no handler.

use crate::store::{queries, Store};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tandem_core::access::{AccessState, Refusal, Scope, ACCESS_WORKSPACE, DEPLOYMENT_ACTIONS};
use tandem_core::{ErrorCode, MlflowError};

/// How long a server trusts its in-memory copy of the access state before it looks at the
/// `_access` log head again: the longest a revocation made through another server of the
/// same store takes to apply here. Writes through this server apply at once.
const VIEW_TTL: Duration = Duration::from_secs(1);
/// How long a verified (user, password) pair is remembered, so that argon2id (tens of
/// milliseconds of CPU by design) runs once per client, not once per request.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
/// Failed password attempts allowed per user name per minute.
const FAILURES_PER_MINUTE: f64 = 10.0;

/// `--auth on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    On,
    Off,
}

impl AuthMode {
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "on" | "true" => Some(AuthMode::On),
            "off" | "false" => Some(AuthMode::Off),
            _ => None,
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// Authentication is off: everything is allowed; the name is what basic auth claimed.
    Unchecked {
        name: String,
    },
    Principal {
        id: String,
        name: String,
    },
    /// The deployment's own key: regions, the front door and the operator's CLI.
    Deployment,
}

impl Caller {
    fn of(p: &tandem_core::access::Principal) -> Caller {
        Caller::Principal {
            id: p.id.clone(),
            name: p.name.clone(),
        }
    }

    /// The name recorded in change-log events.
    pub fn name(&self) -> &str {
        match self {
            Caller::Unchecked { name } | Caller::Principal { name, .. } => name,
            Caller::Deployment => "_deployment",
        }
    }
}

struct View {
    state: Arc<AccessState>,
    head_seq: u64,
    checked: Instant,
    /// Bumped by `invalidate`: a refresh that began before it may store what it read, but
    /// must not call it fresh (it may predate this server's own write).
    generation: u64,
}

/// The authenticator and the one authorization decision.
pub struct Auth {
    mode: AuthMode,
    store: Store,
    view: RwLock<View>,
    /// SHA-256 of the Authorization header -> (principal id, password hash it was verified
    /// against, when).
    basic: Mutex<HashMap<[u8; 32], (String, String, Instant)>>,
    /// Failed attempts per user name: (allowance left, last seen).
    failures: Mutex<HashMap<String, (f64, Instant)>>,
    /// SHA-256 (hex) of the deployment's key, when this server is a region.
    deployment_key: Option<String>,
    metrics_auth: bool,
}

fn unauthenticated(message: impl Into<String>) -> MlflowError {
    MlflowError::new(ErrorCode::Unauthenticated, message)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    tandem_core::ids::hex(&Sha256::digest(bytes))
}

/// An argon2id PHC string for `password` (argon2's default parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String, MlflowError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| MlflowError::internal(format!("no random source: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| MlflowError::internal(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| MlflowError::internal(e.to_string()))?
        .to_string())
}

/// Whether `password` matches an argon2id PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new API token (`tdm_` + 43 characters of base64url, 256 random bits) and its SHA-256.
pub fn new_token() -> Result<(String, String), MlflowError> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw)
        .map_err(|e| MlflowError::internal(format!("no random source: {e}")))?;
    let token = format!(
        "tdm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let sha = sha256_hex(token.as_bytes());
    Ok((token, sha))
}

/// Credentials as sent.
enum Credentials {
    Basic {
        user: String,
        password: String,
        key: [u8; 32],
    },
    Bearer {
        sha256: String,
    },
}

fn parse_header(value: &[u8]) -> Result<Credentials, MlflowError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| unauthenticated("The Authorization header is not valid text."))?
        .trim();
    let (scheme, rest) = text.split_once(' ').ok_or_else(|| {
        unauthenticated("The Authorization header must be 'Basic ...' or 'Bearer ...'.")
    })?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| unauthenticated("The Basic credentials are not valid base64."))?;
        let text = String::from_utf8(raw)
            .map_err(|_| unauthenticated("The Basic credentials are not valid UTF-8."))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| unauthenticated("The Basic credentials must be 'user:password'."))?;
        let key: [u8; 32] = Sha256::digest(value).into();
        Ok(Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
            key,
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(unauthenticated("The Bearer token is empty."));
        }
        Ok(Credentials::Bearer {
            sha256: sha256_hex(rest.as_bytes()),
        })
    } else {
        Err(unauthenticated(
            "The Authorization header must be 'Basic ...' or 'Bearer ...'.",
        ))
    }
}

impl Auth {
    pub fn new(
        mode: AuthMode,
        store: Store,
        deployment_key: Option<&str>,
        metrics_auth: bool,
    ) -> Auth {
        Auth {
            metrics_auth,
            mode,
            store,
            view: RwLock::new(View {
                state: Arc::new(AccessState::default()),
                head_seq: u64::MAX,
                checked: Instant::now() - VIEW_TTL * 2,
                generation: 0,
            }),
            basic: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            deployment_key: deployment_key.map(|k| sha256_hex(k.trim().as_bytes())),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether `/metrics` asks for credentials like every other route.
    pub fn metrics_auth(&self) -> bool {
        self.metrics_auth && self.mode == AuthMode::On
    }

    /// The access state, re-read from the store when it may be stale. Blocking.
    pub fn state(&self) -> Result<Arc<AccessState>, MlflowError> {
        {
            let v = self.view.read().unwrap_or_else(|e| e.into_inner());
            if v.checked.elapsed() < VIEW_TTL {
                return Ok(v.state.clone());
            }
        }
        self.refresh(false)
    }

    /// The in-memory state as it is, stale or not; None when it should be re-read first.
    fn fresh_state(&self) -> Option<Arc<AccessState>> {
        let v = self.view.read().unwrap_or_else(|e| e.into_inner());
        (v.checked.elapsed() < VIEW_TTL).then(|| v.state.clone())
    }

    /// Re-reads the state if the `_access` log moved (or always, with `force`). Blocking.
    pub fn refresh(&self, force: bool) -> Result<Arc<AccessState>, MlflowError> {
        // The store is read with no lock held: requests keep reading the copy they have (the
        // async threads must never wait on a database read).
        let head = self
            .store
            .read(|tx| queries::log_head(tx, ACCESS_WORKSPACE))
            .map_err(MlflowError::from)?
            .map_or(0, |h| h.seq);
        let (seen, current, generation) = {
            let v = self.view.read().unwrap_or_else(|e| e.into_inner());
            (v.head_seq, v.state.clone(), v.generation)
        };
        let state = match force || head != seen {
            true => Arc::new(
                self.store
                    .read(queries::access_state)
                    .map_err(MlflowError::from)?,
            ),
            false => current,
        };
        let mut v = self.view.write().unwrap_or_else(|e| e.into_inner());
        // A slower refresher never puts back an older state (the log head only grows).
        if v.head_seq == u64::MAX || head >= v.head_seq {
            v.state = state.clone();
            v.head_seq = head;
            if v.generation == generation {
                v.checked = Instant::now();
            }
        }
        Ok(v.state.clone())
    }

    /// Called after this server wrote to `_access`: the next request sees the change.
    pub fn invalidate(&self) {
        let mut v = self.view.write().unwrap_or_else(|e| e.into_inner());
        v.checked = Instant::now() - VIEW_TTL * 2;
        v.generation += 1;
        self.basic.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Answers without blocking when it can (a fresh view and a known token or a cached
    /// password check); None when the slow path (store read, argon2id) is needed.
    pub fn authenticate_fast(&self, header: Option<&[u8]>) -> Option<Result<Caller, MlflowError>> {
        if self.mode == AuthMode::Off {
            return Some(Ok(Caller::Unchecked {
                name: claimed_name(header),
            }));
        }
        let header = match header {
            None => return Some(Err(unauthenticated("You are not authenticated. Send HTTP basic credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) or a token (MLFLOW_TRACKING_TOKEN)."))),
            Some(h) => h,
        };
        let creds = match parse_header(header) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let state = self.fresh_state()?;
        let now = self.store.now_ms();
        match creds {
            Credentials::Bearer { sha256 } => {
                if self.deployment_key.as_deref() == Some(sha256.as_str()) {
                    return Some(Ok(Caller::Deployment));
                }
                let p = state.token_principal(&sha256, now)?;
                Some(Ok(Caller::of(p)))
            }
            Credentials::Basic { user, key, .. } => {
                let cache = self.basic.lock().unwrap_or_else(|e| e.into_inner());
                let (pid, phc, at) = cache.get(&key)?;
                let p = state.principals.get(pid)?;
                if at.elapsed() > BASIC_CACHE_TTL
                    || p.name != user
                    || p.password_hash.as_deref() != Some(phc.as_str())
                {
                    return None;
                }
                Some(Ok(Caller::of(p)))
            }
        }
    }

    /// The full check. Blocking (store reads, argon2id).
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Caller, MlflowError> {
        if let Some(answer) = self.authenticate_fast(header) {
            return answer;
        }
        // A stale copy is the usual reason the fast path gave up: with a fresh one, a known
        // token or an already verified password is answered without argon2id.
        let refreshed = self.fresh_state().is_none();
        if refreshed {
            self.state()?;
            if let Some(answer) = self.authenticate_fast(header) {
                return answer;
            }
        }
        let header = header.expect("the fast path answers requests without credentials");
        let creds = parse_header(header)?;
        let state = self.state()?;
        // Something unknown in a copy that was not just re-read may have been issued a moment
        // ago through another server of this store: look once more, never twice.
        let recheck = |known: bool| match known || refreshed {
            true => Ok(state.clone()),
            false => self.refresh(false),
        };
        let now = self.store.now_ms();
        match creds {
            Credentials::Bearer { sha256 } => {
                if self.deployment_key.as_deref() == Some(sha256.as_str()) {
                    return Ok(Caller::Deployment);
                }
                let state = recheck(state.tokens.contains_key(&sha256))?;
                let p = state
                    .token_principal(&sha256, now)
                    .ok_or_else(|| unauthenticated("The token is unknown, expired or revoked."))?;
                Ok(Caller::of(p))
            }
            Credentials::Basic {
                user,
                password,
                key,
            } => {
                self.allow_attempt(&user)?;
                let state = recheck(state.principal_by_name(&user).is_some())?;
                let bad = || unauthenticated("The user name or password is wrong.");
                let Some(p) = state.principal_by_name(&user) else {
                    self.record_failure(&user);
                    return Err(bad());
                };
                let Some(phc) = p.password_hash.clone() else {
                    self.record_failure(&user);
                    return Err(bad());
                };
                if !verify_password(&password, &phc) {
                    self.record_failure(&user);
                    return Err(bad());
                }
                let mut cache = self.basic.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() > 10_000 {
                    cache.retain(|_, (_, _, at)| at.elapsed() < BASIC_CACHE_TTL);
                }
                cache.insert(key, (p.id.clone(), phc, Instant::now()));
                Ok(Caller::of(p))
            }
        }
    }

    /// A token bucket per user name: guessing a password costs a minute per 10 tries.
    fn allow_attempt(&self, user: &str) -> Result<(), MlflowError> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((left, last)) = f.get_mut(user) {
            *left = (*left + last.elapsed().as_secs_f64() * FAILURES_PER_MINUTE / 60.0)
                .min(FAILURES_PER_MINUTE);
            *last = Instant::now();
            if *left < 1.0 {
                return Err(MlflowError::new(
                    ErrorCode::RequestLimitExceeded,
                    format!("Too many failed sign-ins for '{user}'; try again in a minute."),
                ));
            }
        }
        Ok(())
    }

    fn record_failure(&self, user: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() > 100_000 {
            f.clear();
        }
        let e = f
            .entry(user.to_owned())
            .or_insert((FAILURES_PER_MINUTE, Instant::now()));
        e.0 -= 1.0;
    }

    /// The one authorization decision for a request.
    /// Blocking (may re-read the access state).
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        scope: &Scope,
    ) -> Result<(), MlflowError> {
        let state = self.state()?;
        self.authorize_in(&state, caller, action, scope)
    }

    /// The decision from this server's copy if it is fresh, without any IO; None when the
    /// copy must be re-read first (call [`Auth::authorize`] on the blocking pool then).
    pub fn authorize_fresh(
        &self,
        caller: &Caller,
        action: &str,
        scope: &Scope,
    ) -> Option<Result<(), MlflowError>> {
        let state = self.fresh_state()?;
        Some(self.authorize_in(&state, caller, action, scope))
    }

    fn authorize_in(
        &self,
        state: &AccessState,
        caller: &Caller,
        action: &str,
        scope: &Scope,
    ) -> Result<(), MlflowError> {
        let lock = || match state.lock_refusing(action, scope) {
            Some(l) => Err(crate::api::access::locked(l, scope)),
            None => Ok(()),
        };
        match caller {
            // Locks hold whoever asks, with authentication off too.
            Caller::Unchecked { .. } => lock(),
            Caller::Deployment if DEPLOYMENT_ACTIONS.contains(&action) => lock(),
            Caller::Deployment => Err(denied("the deployment key", action, scope)),
            Caller::Principal { id, name } => {
                state
                    .decide(id, action, scope, self.store.now_ms())
                    .map_err(|r| match r {
                        Refusal::NotGranted => denied(&format!("'{name}'"), action, scope),
                        Refusal::NeedsElevation => MlflowError::new(
                            ErrorCode::PermissionDenied,
                            format!(
                                "Permission denied: '{name}' may {action} at {} only with an elevation (no standing right deletes, purges, changes retention, access or leadership): tandem access elevate --role ROLE --scope {} --for 1h --reason \"...\"",
                                scope.render(),
                                scope.render()
                            ),
                        ),
                        Refusal::Locked(l) => crate::api::access::locked(&l, scope),
                    })
            }
        }
    }

    /// `f` of the access state, if this server's copy is fresh (no store read); None when it
    /// must be re-read first (do that on the blocking pool).
    pub fn fresh<T>(&self, f: impl FnOnce(&AccessState) -> T) -> Option<T> {
        self.fresh_state().map(|s| f(&s))
    }

    /// [`Auth::has_narrow_in`] from a fresh copy only.
    pub fn fresh_has_narrow_in(&self, caller: &Caller, ws: &str) -> Option<bool> {
        match caller {
            Caller::Principal { id, .. } => {
                self.fresh(|s| s.has_narrow_in(id, ws, self.store.now_ms()))
            }
            _ => Some(false),
        }
    }

    /// The lock, if any, that refuses `action` at `scope`.
    pub fn check_lock(&self, action: &str, scope: &Scope) -> Result<(), MlflowError> {
        match self.state()?.lock_refusing(action, scope) {
            Some(l) => Err(crate::api::access::locked(l, scope)),
            None => Ok(()),
        }
    }

    /// Whether a lock sits on an experiment or model of `ws` (then a change's object must be
    /// resolved to know whether it is locked).
    pub fn has_narrow_lock_in(&self, ws: &str) -> bool {
        self.state()
            .map(|s| s.has_narrow_lock_in(ws))
            .unwrap_or(true)
    }

    /// Whether deciding for this caller in `ws` may need the request's experiment or model.
    pub fn has_narrow_in(&self, caller: &Caller, ws: &str) -> bool {
        match caller {
            Caller::Principal { id, .. } => self
                .state()
                .map(|s| s.has_narrow_in(id, ws, self.store.now_ms()))
                .unwrap_or(false),
            _ => false,
        }
    }

    /// Whether the caller may take `action` anywhere in workspace `ws` (for listings).
    pub fn sees_workspace(&self, caller: &Caller, action: &str, ws: &str) -> bool {
        match caller {
            Caller::Unchecked { .. } => true,
            Caller::Deployment => DEPLOYMENT_ACTIONS.contains(&action),
            Caller::Principal { id, .. } => self
                .state()
                .map(|s| s.any_in_workspace(id, action, ws, self.store.now_ms()))
                .unwrap_or(false),
        }
    }
}

fn denied(who: &str, action: &str, scope: &Scope) -> MlflowError {
    MlflowError::new(
        ErrorCode::PermissionDenied,
        format!(
            "Permission denied: {who} may not {action} at {}.",
            scope.render()
        ),
    )
}

/// With authentication off, the user name basic auth claims (what the client sends from
/// MLFLOW_TRACKING_USERNAME), or "anonymous".
fn claimed_name(header: Option<&[u8]>) -> String {
    match header.map(parse_header) {
        Some(Ok(Credentials::Basic { user, .. })) if !user.is_empty() => user,
        _ => "anonymous".to_owned(),
    }
}
