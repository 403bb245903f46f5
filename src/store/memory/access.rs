//! API tokens and the record of denied attempts.

use async_trait::async_trait;

use super::MemoryStore;
use super::commit::Change;
use crate::core::access::model::{ApiToken, Denial};
use crate::core::error::{Error, Result};
use crate::core::ports::{
    AccessStore, Committed, TokenRevoke, TokenWrite, token_already_revoked, token_exists,
};

#[async_trait]
impl AccessStore for MemoryStore {
    async fn create_token(&self, write: TokenWrite) -> Result<Committed> {
        let mut state = self.state.lock();
        let token = &write.token;
        if state
            .tokens
            .iter()
            .any(|t| t.id == token.id || t.hash == token.hash)
        {
            return Err(token_exists(&token.id));
        }
        state.tokens.push(token.clone());
        Ok(state.commit(Change::from(&write)))
    }

    async fn revoke_token(&self, write: TokenRevoke) -> Result<Committed> {
        let mut state = self.state.lock();
        let token = state
            .tokens
            .iter_mut()
            .find(|t| t.id == write.id)
            .ok_or_else(|| Error::not_found("token", write.id.as_str()))?;
        if token.revoked_at.is_some() {
            return Err(token_already_revoked(&write.id));
        }
        token.revoked_at = Some(write.at);
        Ok(state.commit(Change::from(&write)))
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let mut tokens = self.state.lock().tokens.clone();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    async fn record_denial(&self, denial: Denial) -> Result<()> {
        let mut state = self.state.lock();
        let id = state.denials.len() as u64 + 1;
        state.denials.push(Denial { id, ..denial });
        Ok(())
    }

    async fn denials(&self, before: Option<u64>, limit: u32) -> Result<Vec<Denial>> {
        let state = self.state.lock();
        Ok(super::page(state.denials.iter(), |d| d.id, before, limit))
    }
}
