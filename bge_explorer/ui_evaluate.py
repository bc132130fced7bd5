"""Placeholder for the Evaluate tab (another helper replaces this file)."""
from __future__ import annotations

import gradio as gr


def build_evaluate_tab(session_state):
    gr.Markdown("## Evaluation")
