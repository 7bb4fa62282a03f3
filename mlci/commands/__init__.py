"""One module per verb: plain arguments in, a result out. Imported only when the verb runs."""
