"""One construct per capability; the stack (cdk/stack.py) only composes them."""
